import Foundation
import MusitViewModel
import Synchronization

/// The layout, saved as JSON under the XDG config directory and restored at start.
public final class LayoutStore: Sendable {
    public let path: String
    private let problem = Mutex<String?>(nil)

    public init(directory: String) {
        path = directory + "/layout.json"
    }

    public var loadError: String? { problem.withLock { $0 } }

    public func load() -> Layout? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do {
            return try JSONDecoder().decode(Layout.self, from: data)
        } catch {
            problem.withLock { $0 = "\(path): \(error)" }
            return nil
        }
    }

    public func save(_ layout: Layout) {
        do {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(layout).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            problem.withLock { $0 = "cannot save layout: \(error)" }
        }
    }
}
