import FaultlineKit

// What a live metrics endpoint reads from a running load (``LoadMonitor``): each loop's recorder
// turns what it keeps anyway into counters when asked, on its own loop, so a request costs the
// load nothing more.

extension ExactLatencies {
    /// Responses by bucket of ``LoadProgress/latencyBucketMicros`` (the last: slower than every bound).
    func bucketCounts() -> [Int] {
        var buckets = Array(repeating: 0, count: LoadProgress.latencyBucketMicros.count + 1)
        forEachCount { micros, count in buckets[LoadProgress.Request.bucket(ofMicros: micros)] += count }
        return buckets
    }
}

extension RequestStats {
    /// These stats as a request's live counters.
    func progress(name: String) -> LoadProgress.Request {
        var request = LoadProgress.Request(name: name)
        request.statuses = statusCodes
        let unanswered = count - latencies.total
        if unanswered > 0 { request.statuses[0, default: 0] += unanswered }
        for key in ErrorKey.allCases where errors[key.rawValue] > 0 { request.errors[key.name] = errors[key.rawValue] }
        request.latencyBuckets = latencies.bucketCounts()
        request.latencySumMicros = sumMicros
        return request
    }
}

extension LoadRecorder {
    /// What this loop counted so far, every segment merged. Call it on the recorder's loop.
    func progress(names: [String]) -> LoadProgress {
        var progress = LoadProgress(requests: names)
        for segment in stats {
            for (index, request) in segment.enumerated() where index < names.count {
                progress.requests[index].add(request.progress(name: names[index]))
            }
        }
        progress.dropped = drops.reduce(0, +)
        return progress
    }
}
