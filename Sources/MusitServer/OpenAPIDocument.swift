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
"""#
}
