import Foundation

// FaultlineTestSupport: what the test targets share (like swift-nio's NIOTestUtils) — waiting on
// another process or thread, the binary runner, test sockets and servers, scoped fixtures. It is a
// test-only target, not a product: plugin authors get FaultlineTesting (fakes and the toxic
// harness), which depends on the kernel only.

/// Polls `condition` until it holds or `timeout` passes, and returns whether it held: for state
/// that another process, thread or event loop makes true, where no signal can be awaited.
/// - Parameters:
///   - timeout: how long to wait; generous by default, because a loaded machine is slow and a
///     condition that holds returns at once.
///   - condition: checked every 10 ms, and once more at the deadline.
public func eventually(timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}

/// Runs blocking code (a blocking socket, `waitpid`, a large byte loop) on a thread of its own,
/// never on the cooperative pool, and returns its result.
public func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// A test's own failure, with a message that says what went wrong.
public struct TestFailure: Error, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}

/// Something a test starts and must close before it returns (a server, a fixture).
public protocol TestResource {
    /// Releases everything the resource holds (sockets, event loops, children); safe to call once.
    func close() async
}

/// Runs `body` with `resource` and closes the resource before returning, also when `body` throws:
/// the scoped form of every fixture, so nothing a test starts outlives it.
///
/// ```swift
/// try await closing(await TestHTTPServer.start()) { server in
///     …
/// }
/// ```
public func closing<Resource: TestResource, T>(_ resource: Resource, _ body: (Resource) async throws -> T) async throws -> T {
    do {
        let result = try await body(resource)
        await resource.close()
        return result
    } catch {
        await resource.close()
        throw error
    }
}
