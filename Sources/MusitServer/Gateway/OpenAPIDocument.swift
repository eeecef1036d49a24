/// The API contract, served at `/openapi.yaml`. Keep it in step with `Routes`.
enum OpenAPIDocument {
    static let yaml = #"""
openapi: 3.1.0
info:
  title: Musit API
  version: 0.1.0
  description: The Musit backend. Errors are application/problem+json (RFC 9457).
servers:
  - url: http://127.0.0.1:8080
components:
  securitySchemes:
    bearer:
      type: http
      scheme: bearer
      bearerFormat: JWT
  schemas:
    Problem:
      type: object
      required: [type, title, status]
      properties:
        type: {type: string}
        title: {type: string}
        status: {type: integer}
        detail: {type: string}
        resumeFrom: {type: integer, format: int64, description: "410 from /events: the cursor to resume from"}
    Health:
      type: object
      required: [status, version]
      properties:
        status: {type: string, enum: [ok]}
        version: {type: string}
    RegisterRequest:
      type: object
      required: [username, password]
      properties:
        username: {type: string, pattern: '^[A-Za-z0-9_.-]{3,32}$'}
        password: {type: string, minLength: 8, maxLength: 72}
        displayName: {type: string, maxLength: 64}
    LoginRequest:
      type: object
      required: [username, password]
      properties:
        username: {type: string}
        password: {type: string}
    RefreshRequest:
      type: object
      required: [refreshToken]
      properties:
        refreshToken: {type: string}
    UserInfo:
      type: object
      required: [id, username, displayName, role, bio]
      properties:
        id: {type: integer, format: int64}
        username: {type: string}
        displayName: {type: string}
        role: {type: string, enum: [user, admin]}
        bio: {type: string, maxLength: 500}
    TokenPair:
      type: object
      required: [accessToken, refreshToken, tokenType, expiresIn, user]
      properties:
        accessToken: {type: string}
        refreshToken: {type: string}
        tokenType: {type: string, enum: [Bearer]}
        expiresIn: {type: integer}
        user: {$ref: '#/components/schemas/UserInfo'}
    ProfileUpdate:
      type: object
      properties:
        displayName: {type: string, minLength: 1, maxLength: 64}
        bio: {type: string, maxLength: 500}
    UserList:
      type: object
      required: [users]
      properties:
        users: {type: array, items: {$ref: '#/components/schemas/UserInfo'}}
    FriendRequestBody:
      type: object
      required: [username]
      properties:
        username: {type: string}
    NowPlayingInfo:
      type: object
      required: [state]
      properties:
        state: {type: string, enum: [playing, paused, stopped]}
        title: {type: string}
        artist: {type: string}
        position: {type: number, minimum: 0}
        duration: {type: number, minimum: 0}
    FriendInfo:
      type: object
      required: [user, online]
      properties:
        user: {$ref: '#/components/schemas/UserInfo'}
        online: {type: boolean}
        nowPlaying: {$ref: '#/components/schemas/NowPlayingInfo'}
        lastSeen: {type: string, format: date-time}
    FriendsList:
      type: object
      required: [friends, incoming, outgoing]
      properties:
        friends: {type: array, items: {$ref: '#/components/schemas/FriendInfo'}}
        incoming: {type: array, items: {$ref: '#/components/schemas/UserInfo'}}
        outgoing: {type: array, items: {$ref: '#/components/schemas/UserInfo'}}
    SendMessage:
      type: object
      required: [to, body, clientId]
      properties:
        to: {type: string}
        body: {type: string, minLength: 1, maxLength: 4000}
        clientId: {type: string, minLength: 1, maxLength: 64}
    ChatMessage:
      type: object
      required: [id, from, to, body, clientId, sentAt]
      properties:
        id: {type: integer, format: int64}
        from: {type: string}
        to: {type: string}
        body: {type: string}
        clientId: {type: string}
        sentAt: {type: string, format: date-time}
        readAt: {type: string, format: date-time}
    MessagesPage:
      type: object
      required: [messages]
      properties:
        messages: {type: array, items: {$ref: '#/components/schemas/ChatMessage'}}
        nextBefore: {type: integer, format: int64}
    ReadReceipt:
      type: object
      required: [upTo]
      properties:
        upTo: {type: integer, format: int64}
    ServerEvent:
      type: object
      required: [id, kind, createdAt]
      properties:
        id: {type: integer, format: int64, description: "This user's event number: dense, in order"}
        kind: {type: string, enum: [chat.message, chat.read, friend.request, friend.accepted, friend.removed, presence, library.changed]}
        createdAt: {type: string, format: date-time}
        user: {type: string}
        message: {$ref: '#/components/schemas/ChatMessage'}
        nowPlaying: {$ref: '#/components/schemas/NowPlayingInfo'}
        readUpTo: {type: integer, format: int64}
        online: {type: boolean}
    EventsPage:
      type: object
      required: [events, cursor]
      properties:
        events: {type: array, items: {$ref: '#/components/schemas/ServerEvent'}}
        cursor: {type: integer, format: int64}
    Song:
      type: object
      required: [id, title, duration, bytes, owner, hasCover, sha256, createdAt]
      properties:
        id: {type: integer, format: int64}
        title: {type: string}
        artist: {type: string}
        album: {type: string}
        trackNumber: {type: integer}
        year: {type: integer}
        duration: {type: number}
        bytes: {type: integer, format: int64}
        owner: {type: string}
        hasCover: {type: boolean}
        sha256: {type: string}
        createdAt: {type: string, format: date-time}
        sampleRate: {type: integer, description: "Hz of the decoded audio"}
    SongsPage:
      type: object
      required: [songs]
      properties:
        songs: {type: array, items: {$ref: '#/components/schemas/Song'}}
        nextCursor: {type: integer, format: int64}
    StreamURLs:
      type: object
      required: [hls, audio, token, expiresIn]
      properties:
        hls: {type: string}
        audio: {type: string}
        token: {type: string}
        expiresIn: {type: integer}
    PlayReport:
      type: object
      required: [songId, event, position]
      properties:
        songId: {type: integer, format: int64}
        event: {type: string, enum: [start, progress, end]}
        position: {type: number, minimum: 0}
        playId: {type: integer, format: int64}
    PlayStarted:
      type: object
      required: [playId]
      properties:
        playId: {type: integer, format: int64}
    AdminStats:
      type: object
      required: [users, songs, storageBytes, playsPerDay, topSongs, topArtists, listenersNow, requestsPerRoute]
      properties:
        users: {type: integer}
        songs: {type: integer}
        storageBytes: {type: integer, format: int64}
        playsPerDay:
          type: array
          items: {type: object, required: [day, plays], properties: {day: {type: string}, plays: {type: integer}}}
        topSongs:
          type: array
          items:
            type: object
            required: [songId, title, plays]
            properties: {songId: {type: integer}, title: {type: string}, artist: {type: string}, plays: {type: integer}}
        topArtists:
          type: array
          items: {type: object, required: [artist, plays], properties: {artist: {type: string}, plays: {type: integer}}}
        listenersNow: {type: integer}
        requestsPerRoute:
          type: array
          items: {type: object, required: [route, requests], properties: {route: {type: string}, requests: {type: integer}}}
  parameters:
    username:
      name: username
      in: path
      required: true
      schema: {type: string}
    songId:
      name: id
      in: path
      required: true
      schema: {type: integer, format: int64}
    mediaToken:
      name: token
      in: query
      required: false
      description: A media token from /stream, for players that cannot send headers
      schema: {type: string}
  responses:
    Problem:
      description: An error
      content:
        application/problem+json:
          schema: {$ref: '#/components/schemas/Problem'}
paths:
  /healthz:
    get:
      summary: Liveness
      responses:
        '200':
          description: Up
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Health'}
  /openapi.yaml:
    get:
      summary: This document
      responses:
        '200':
          description: The OpenAPI document
          content:
            application/yaml:
              schema: {type: string}
  /api/v1/auth/register:
    post:
      summary: Create an account and sign in (the first account is admin)
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/RegisterRequest'}
      responses:
        '201':
          description: Created and signed in
          content:
            application/json:
              schema: {$ref: '#/components/schemas/TokenPair'}
        '400': {$ref: '#/components/responses/Problem'}
        '409': {$ref: '#/components/responses/Problem'}
        '413': {$ref: '#/components/responses/Problem'}
  /api/v1/auth/login:
    post:
      summary: Sign in
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/LoginRequest'}
      responses:
        '200':
          description: Signed in
          content:
            application/json:
              schema: {$ref: '#/components/schemas/TokenPair'}
        '400': {$ref: '#/components/responses/Problem'}
        '401': {$ref: '#/components/responses/Problem'}
        '429': {$ref: '#/components/responses/Problem'}
  /api/v1/auth/refresh:
    post:
      summary: Trade a refresh token for new tokens (rotation; reuse revokes the session)
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/RefreshRequest'}
      responses:
        '200':
          description: New tokens
          content:
            application/json:
              schema: {$ref: '#/components/schemas/TokenPair'}
        '400': {$ref: '#/components/responses/Problem'}
        '401': {$ref: '#/components/responses/Problem'}
  /api/v1/auth/logout:
    post:
      summary: End the session the refresh token belongs to
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/RefreshRequest'}
      responses:
        '204': {description: Signed out}
        '400': {$ref: '#/components/responses/Problem'}
  /api/v1/me:
    get:
      summary: The signed-in user
      security: [{bearer: []}]
      responses:
        '200':
          description: The user
          content:
            application/json:
              schema: {$ref: '#/components/schemas/UserInfo'}
        '401': {$ref: '#/components/responses/Problem'}
    patch:
      summary: Edit your display name and bio
      security: [{bearer: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/ProfileUpdate'}
      responses:
        '200':
          description: The updated profile
          content:
            application/json:
              schema: {$ref: '#/components/schemas/UserInfo'}
        '400': {$ref: '#/components/responses/Problem'}
        '401': {$ref: '#/components/responses/Problem'}
    delete:
      summary: Delete your account and everything that is yours (asks for the password again)
      security: [{bearer: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [password]
              properties:
                password: {type: string}
      responses:
        '204': {description: 'Deleted, with your songs, messages and friendships'}
        '400': {$ref: '#/components/responses/Problem'}
        '401': {$ref: '#/components/responses/Problem'}
        '403': {$ref: '#/components/responses/Problem'}
        '429': {$ref: '#/components/responses/Problem'}
  /metrics:
    get:
      summary: Prometheus metrics
      responses:
        '200':
          description: Prometheus text format
          content:
            text/plain:
              schema: {type: string}
  /api/v1/users:
    get:
      summary: Find users by name
      security: [{bearer: []}]
      parameters:
        - {name: query, in: query, schema: {type: string, maxLength: 64}}
      responses:
        '200':
          description: Matching users
          content:
            application/json:
              schema: {$ref: '#/components/schemas/UserList'}
        '400': {$ref: '#/components/responses/Problem'}
        '401': {$ref: '#/components/responses/Problem'}
  /api/v1/users/{username}:
    get:
      summary: A user's profile
      security: [{bearer: []}]
      parameters: [{$ref: '#/components/parameters/username'}]
      responses:
        '200':
          description: The profile
          content:
            application/json:
              schema: {$ref: '#/components/schemas/UserInfo'}
        '401': {$ref: '#/components/responses/Problem'}
        '404': {$ref: '#/components/responses/Problem'}
  /api/v1/friends:
    get:
      summary: Friends with presence, and pending requests
      security: [{bearer: []}]
      responses:
        '200':
          description: The lists
          content:
            application/json:
              schema: {$ref: '#/components/schemas/FriendsList'}
        '401': {$ref: '#/components/responses/Problem'}
  /api/v1/friends/requests:
    post:
      summary: Ask someone to be friends (asking back accepts)
      security: [{bearer: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/FriendRequestBody'}
      responses:
        '200': {description: Now friends}
        '201': {description: Request sent}
        '202': {description: Already asked}
        '400': {$ref: '#/components/responses/Problem'}
        '401': {$ref: '#/components/responses/Problem'}
        '404': {$ref: '#/components/responses/Problem'}
        '429': {$ref: '#/components/responses/Problem'}
  /api/v1/friends/requests/{username}/accept:
    post:
      summary: Accept a friend request
      security: [{bearer: []}]
      parameters: [{$ref: '#/components/parameters/username'}]
      responses:
        '200': {description: Now friends}
        '401': {$ref: '#/components/responses/Problem'}
        '404': {$ref: '#/components/responses/Problem'}
  /api/v1/friends/requests/{username}/decline:
    post:
      summary: Decline a friend request
      security: [{bearer: []}]
      parameters: [{$ref: '#/components/parameters/username'}]
      responses:
        '204': {description: Declined}
        '401': {$ref: '#/components/responses/Problem'}
        '404': {$ref: '#/components/responses/Problem'}
  /api/v1/friends/{username}:
    delete:
      summary: End a friendship, or withdraw a request
      security: [{bearer: []}]
      parameters: [{$ref: '#/components/parameters/username'}]
      responses:
        '204': {description: Removed}
        '401': {$ref: '#/components/responses/Problem'}
        '404': {$ref: '#/components/responses/Problem'}
        '429': {$ref: '#/components/responses/Problem'}
  /api/v1/messages:
    post:
      summary: Send a chat message to a friend (idempotent per clientId)
      security: [{bearer: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/SendMessage'}
      responses:
        '200':
          description: Already sent with this clientId
          content:
            application/json:
              schema: {$ref: '#/components/schemas/ChatMessage'}
        '201':
          description: Sent
          content:
            application/json:
              schema: {$ref: '#/components/schemas/ChatMessage'}
        '400': {$ref: '#/components/responses/Problem'}
        '401': {$ref: '#/components/responses/Problem'}
        '403': {$ref: '#/components/responses/Problem'}
        '404': {$ref: '#/components/responses/Problem'}
  /api/v1/conversations/{username}/messages:
    get:
      summary: Chat history with a user, newest first
      security: [{bearer: []}]
      parameters:
        - {$ref: '#/components/parameters/username'}
        - {name: before, in: query, schema: {type: integer, format: int64, minimum: 1}}
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 200}}
      responses:
        '200':
          description: A page
          content:
            application/json:
              schema: {$ref: '#/components/schemas/MessagesPage'}
        '400': {$ref: '#/components/responses/Problem'}
        '401': {$ref: '#/components/responses/Problem'}
        '404': {$ref: '#/components/responses/Problem'}
  /api/v1/conversations/{username}/read:
    post:
      summary: Mark messages from a user read
      security: [{bearer: []}]
      parameters: [{$ref: '#/components/parameters/username'}]
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/ReadReceipt'}
      responses:
        '204': {description: Marked}
        '400': {$ref: '#/components/responses/Problem'}
        '401': {$ref: '#/components/responses/Problem'}
        '404': {$ref: '#/components/responses/Problem'}
  /api/v1/presence:
    put:
      summary: Say what you are listening to (friends see it while you sync)
      security: [{bearer: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/NowPlayingInfo'}
      responses:
        '204': {description: Stored}
        '400': {$ref: '#/components/responses/Problem'}
        '401': {$ref: '#/components/responses/Problem'}
  /api/v1/events:
    get:
      summary: Long-poll for events after a cursor
      description: >-
        Event ids are per user, dense (1, 2, 3, ...) and answered in order: a page holds the
        events right after the cursor, without gaps. A cursor past the newest event (a client
        restored from a backup) or below pruned history is 410 with resumeFrom: reload state
        and resume from there.
      security: [{bearer: []}]
      parameters:
        - {name: cursor, in: query, schema: {type: integer, format: int64, minimum: 0}}
        - {name: timeout, in: query, schema: {type: integer, minimum: 0, maximum: 60}}
      responses:
        '200':
          description: Events (possibly none, after the timeout)
          content:
            application/json:
              schema: {$ref: '#/components/schemas/EventsPage'}
        '400': {$ref: '#/components/responses/Problem'}
        '401': {$ref: '#/components/responses/Problem'}
        '410': {$ref: '#/components/responses/Problem'}
  /api/v1/songs:
    get:
      summary: The library, by id, with search
      security: [{bearer: []}]
      parameters:
        - {name: cursor, in: query, schema: {type: integer, format: int64, minimum: 0}}
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 200}}
        - {name: query, in: query, schema: {type: string, maxLength: 100}}
      responses:
        '200':
          description: A page
          content:
            application/json:
              schema: {$ref: '#/components/schemas/SongsPage'}
        '400': {$ref: '#/components/responses/Problem'}
        '401': {$ref: '#/components/responses/Problem'}
    post:
      summary: Upload an MP3, as the body itself or as the part named file of a form
      description: >-
        The body is streamed to disk: as audio/mpeg it is the file; as multipart/form-data
        the part named `file` is the file and other parts are ignored (they may take 64 KiB).
      security: [{bearer: []}]
      requestBody:
        required: true
        content:
          audio/mpeg:
            schema: {type: string, format: binary}
          multipart/form-data:
            schema:
              type: object
              required: [file]
              properties:
                file: {type: string, format: binary}
      responses:
        '201':
          description: Added
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Song'}
        '400': {$ref: '#/components/responses/Problem'}
        '401': {$ref: '#/components/responses/Problem'}
        '409': {$ref: '#/components/responses/Problem'}
        '413': {$ref: '#/components/responses/Problem'}
        '415': {$ref: '#/components/responses/Problem'}
        '422': {$ref: '#/components/responses/Problem'}
  /api/v1/songs/{id}:
    get:
      summary: One song
      security: [{bearer: []}]
      parameters: [{$ref: '#/components/parameters/songId'}]
      responses:
        '200':
          description: The song
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Song'}
        '401': {$ref: '#/components/responses/Problem'}
        '404': {$ref: '#/components/responses/Problem'}
    delete:
      summary: Delete a song (owner or admin)
      security: [{bearer: []}]
      parameters: [{$ref: '#/components/parameters/songId'}]
      responses:
        '204': {description: Deleted}
        '401': {$ref: '#/components/responses/Problem'}
        '403': {$ref: '#/components/responses/Problem'}
        '404': {$ref: '#/components/responses/Problem'}
  /api/v1/songs/{id}/cover:
    get:
      summary: The embedded cover image
      security: [{bearer: []}]
      parameters: [{$ref: '#/components/parameters/songId'}]
      responses:
        '200':
          description: The image
          content:
            image/*:
              schema: {type: string, format: binary}
        '401': {$ref: '#/components/responses/Problem'}
        '404': {$ref: '#/components/responses/Problem'}
  /api/v1/songs/{id}/stream:
    get:
      summary: Media URLs with a short-lived token
      security: [{bearer: []}]
      parameters: [{$ref: '#/components/parameters/songId'}]
      responses:
        '200':
          description: The URLs
          content:
            application/json:
              schema: {$ref: '#/components/schemas/StreamURLs'}
        '401': {$ref: '#/components/responses/Problem'}
        '404': {$ref: '#/components/responses/Problem'}
  /api/v1/songs/{id}/audio:
    get:
      summary: The MP3, with Range, If-Range and ETag
      security: [{bearer: []}, {}]
      parameters:
        - {$ref: '#/components/parameters/songId'}
        - {$ref: '#/components/parameters/mediaToken'}
      responses:
        '200':
          description: The whole file
          content:
            audio/mpeg:
              schema: {type: string, format: binary}
        '206':
          description: A byte range
          content:
            audio/mpeg:
              schema: {type: string, format: binary}
        '304': {description: Not modified}
        '401': {$ref: '#/components/responses/Problem'}
        '404': {$ref: '#/components/responses/Problem'}
        '416': {$ref: '#/components/responses/Problem'}
  /api/v1/songs/{id}/hls/index.m3u8:
    get:
      summary: HLS VOD playlist of packed-audio segments
      security: [{bearer: []}, {}]
      parameters:
        - {$ref: '#/components/parameters/songId'}
        - {$ref: '#/components/parameters/mediaToken'}
      responses:
        '200':
          description: The playlist
          content:
            application/vnd.apple.mpegurl:
              schema: {type: string}
        '401': {$ref: '#/components/responses/Problem'}
        '404': {$ref: '#/components/responses/Problem'}
  /api/v1/songs/{id}/hls/{segment}:
    get:
      summary: One segment (ID3 PRIV timestamp, then MP3 frames)
      security: [{bearer: []}, {}]
      parameters:
        - {$ref: '#/components/parameters/songId'}
        - {name: segment, in: path, required: true, schema: {type: string, pattern: '^[0-9]+\.mp3$'}}
        - {$ref: '#/components/parameters/mediaToken'}
      responses:
        '200':
          description: The segment
          content:
            audio/mpeg:
              schema: {type: string, format: binary}
        '401': {$ref: '#/components/responses/Problem'}
        '404': {$ref: '#/components/responses/Problem'}
  /api/v1/plays:
    post:
      summary: Report a play's start, progress or end
      security: [{bearer: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/PlayReport'}
      responses:
        '201':
          description: Started
          content:
            application/json:
              schema: {$ref: '#/components/schemas/PlayStarted'}
        '204': {description: Recorded}
        '400': {$ref: '#/components/responses/Problem'}
        '401': {$ref: '#/components/responses/Problem'}
        '404': {$ref: '#/components/responses/Problem'}
  /api/v1/admin/stats:
    get:
      summary: Statistics (admins only)
      security: [{bearer: []}]
      responses:
        '200':
          description: The statistics
          content:
            application/json:
              schema: {$ref: '#/components/schemas/AdminStats'}
        '401': {$ref: '#/components/responses/Problem'}
        '403': {$ref: '#/components/responses/Problem'}
"""#
}
