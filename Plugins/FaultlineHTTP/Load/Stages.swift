import FaultlineKit

/// One stage of a ramping load (k6's `stages`): over `duration` seconds the number of users
/// (closed model) or the arrival rate (open model) moves linearly to `target`.
public struct Stage: Codable, Sendable, Equatable {
    public var duration: Double
    public var target: Double

    public init(duration: Double, target: Double) {
        self.duration = duration
        self.target = target
    }
}

/// A value that moves linearly from `start` through each stage's target over the stage's
/// duration: k6's ramping-vus (users) and ramping-arrival-rate (iterations a second).
struct Ramp: Sendable, Equatable {
    var start: Double
    var stages: [Stage]

    /// One straight piece: from `t0` to `t1` seconds, the value from `v0` to `v1`.
    struct Piece {
        var t0: Double
        var t1: Double
        var v0: Double
        var v1: Double

        /// The integral of the value over the piece.
        var area: Double { (v0 + v1) / 2 * (t1 - t0) }
    }

    var pieces: [Piece] {
        var out: [Piece] = []
        var t = 0.0
        var v = start
        for stage in stages {
            out.append(Piece(t0: t, t1: t + stage.duration, v0: v, v1: stage.target))
            t += stage.duration
            v = stage.target
        }
        return out
    }

    /// The ramp's length in seconds.
    var total: Double { stages.reduce(0) { $0 + $1.duration } }

    /// The highest value it reaches.
    var peak: Double { stages.map(\.target).reduce(start, max) }

    /// The value at `t` seconds.
    func value(at t: Double) -> Double {
        guard let piece = pieces.first(where: { t < $0.t1 }) else { return stages.last?.target ?? start }
        return piece.v0 + (piece.v1 - piece.v0) * (t - piece.t0) / (piece.t1 - piece.t0)
    }

    /// The stretches, in seconds, during which the value is at least `level` (user `level`'s
    /// active time when the value counts users), merged where they meet.
    func intervals(atLeast level: Double) -> [(from: Double, to: Double)] {
        var out: [(from: Double, to: Double)] = []
        for p in pieces {
            let atStart = p.v0 >= level
            let atEnd = p.v1 >= level
            let crossing = p.v0 == p.v1 ? p.t0 : p.t0 + (level - p.v0) / (p.v1 - p.v0) * (p.t1 - p.t0)
            let span: (Double, Double)? =
                switch (atStart, atEnd) {
                case (true, true): (p.t0, p.t1)
                case (false, true): (crossing, p.t1)
                case (true, false): (p.t0, crossing)
                case (false, false): nil
                }
            guard let span, span.1 > span.0 else { continue }
            if let last = out.last, abs(last.to - span.0) < 1e-9 {
                out[out.count - 1].to = span.1
            } else {
                out.append((span.0, span.1))
            }
        }
        return out
    }

    /// Iterations the ramp starts when its value is a rate: the integral over its length.
    var arrivals: Int { Int(pieces.reduce(0) { $0 + $1.area }.rounded()) }

    /// When arrival `k` (from 0) is due, in seconds: the `t` at which the integral of the rate
    /// reaches `k`. At a constant rate r this is k / r, as without stages.
    func arrivalTime(_ k: Int) -> Double {
        var remaining = Double(k)
        let all = pieces
        for (number, p) in all.enumerated() {
            if remaining < p.area || number == all.count - 1 {
                // v0·τ + (v1 − v0)·τ² / (2·d) = remaining, solved in the form that stays exact
                // when the slope is 0 or negative.
                let d = p.t1 - p.t0
                let slope = (p.v1 - p.v0) / (2 * d)
                let denominator = p.v0 + (max(p.v0 * p.v0 + 4 * slope * remaining, 0)).squareRoot()
                return min(p.t0 + (denominator > 0 ? 2 * remaining / denominator : 0), p.t1)
            }
            remaining -= p.area
        }
        return 0
    }
}
