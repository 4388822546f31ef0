#if canImport(Glibc)
    import Glibc
#endif
import FaultlineKit
import FaultlineNetwork
@testable import FaultlineProcess
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import Testing

/// A unique executable name: a copy of `sleep` under that name, so a name selector matches only
/// the test's process.
func uniqueSleeper(named name: String, in directory: ScratchDirectory) throws -> String {
    let path = directory.path(name)
    try FileManager.default.copyItem(atPath: try ChildProcess.resolveExecutable("sleep"), toPath: path)
    return path
}
