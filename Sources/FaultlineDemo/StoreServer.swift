import NIOCore
import NIOPosix
import Synchronization

/// `faultline-demo store`: a tiny in-memory key-value server speaking the Redis protocol (RESP2).
///
/// Requests may arrive split across TCP segments at any byte and pipelined many to a segment; each
/// connection's replies go out in request order. It answers the commands listed in `KeyValueStore`.
public enum StoreServer {
    /// Binds the store.
    /// - Parameters:
    ///   - host: The address to listen on.
    ///   - port: The port; 0 picks a free one.
    ///   - group: The event loops serving connections.
    public static func bind(
        host: String = "127.0.0.1",
        port: Int = 0,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> DemoServer {
        let store = KeyValueStore()
        let nextClientID = Atomic<Int64>(1)
        return try await DemoServer.bind(
            name: "store", host: host, port: port, group: group,
            initializer: { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPDecoder(allowInline: true)))
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(RESPEncoder()))
                    return try NIOAsyncChannel<RESPValue, RESPValue>(wrappingChannelSynchronously: channel)
                }
            },
            handle: { connection in
                let id = nextClientID.wrappingAdd(1, ordering: .relaxed).oldValue
                await serve(connection, store: store, session: StoreSession(id: id))
            }
        )
    }

    private static func serve(_ connection: NIOAsyncChannel<RESPValue, RESPValue>, store: KeyValueStore, session: StoreSession) async {
        var session = session
        try? await connection.executeThenClose { requests, replies in
            do {
                for try await request in requests {
                    try await replies.write(store.execute(request, session: &session))
                    if session.quit { return }
                }
            } catch let error as RESPProtocolError {
                // Like Redis: say what was wrong, then hang up, since the stream cannot be resynchronised.
                try await replies.write(.error("ERR Protocol error: \(error.description)"))
            }
        }
    }
}
