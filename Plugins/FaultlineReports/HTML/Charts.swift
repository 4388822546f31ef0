import FaultlineKit
import Foundation

/// Inline SVG charts for the HTML report. Geometry is in a fixed 960-unit-wide coordinate system
/// (the SVG scales to its container); colours come from the page's CSS, so the charts follow the
/// light and dark themes and print in light colours.
enum Charts {
    static let width = 960.0

    /// Maps seconds on a chart's time axis to x.
    struct TimeScale {
        let span: Double
        let left: Double
        let right: Double

        /// x of `seconds`, clamped to the plot.
        func x(_ seconds: Double) -> Double {
            left + min(max(seconds, 0), span) / span * (right - left)
        }
    }

    /// A coordinate with two decimals.
    static func n(_ value: Double) -> String { String(format: "%.2f", value) }

    /// A step of 1, 2 or 5 × 10ⁿ that divides `maximum` into about `count` parts.
    static func niceStep(_ maximum: Double, count: Int) -> Double {
        let rough = maximum / Double(max(count, 1))
        guard rough > 0, rough.isFinite else { return 1 }
        let base = pow(10, floor(log10(rough)))
        let fraction = rough / base
        let nice: Double = fraction <= 1 ? 1 : (fraction <= 2 ? 2 : (fraction <= 5 ? 5 : 10))
        return nice * base
    }

    /// The opening tag of a chart.
    static func open(_ kind: String, height: Double, label: String, extra: String = "") -> String {
        "<svg class=\"chart\" data-chart=\"\(kind)\" viewBox=\"0 0 \(n(width)) \(n(height))\" width=\"\(Int(width))\" height=\"\(Int(height.rounded(.up)))\" "
            + "role=\"img\" aria-label=\"\(HTML.escape(label))\"\(extra) xmlns=\"http://www.w3.org/2000/svg\">\n"
    }

    /// Vertical grid lines and labels for a time axis.
    static func timeAxis(_ scale: TimeScale, top: Double, bottom: Double) -> String {
        let step = niceStep(scale.span, count: 8)
        // Sub-second runs read better in milliseconds than in 0.001 s steps.
        let label: (Double) -> String = scale.span < 1 ? { "\(Format.number(($0 * 1e6).rounded() / 1000)) ms" } : { "\(Format.number($0)) s" }
        var out = "<g class=\"grid\">"
        var tick = 0.0
        while tick <= scale.span + step * 1e-6 {
            let x = scale.x(tick)
            out += "<line x1=\"\(n(x))\" y1=\"\(n(top))\" x2=\"\(n(x))\" y2=\"\(n(bottom))\"/>"
            out += "<text class=\"tick\" x=\"\(n(x))\" y=\"\(n(bottom + 15))\" text-anchor=\"middle\">\(label(tick))</text>"
            tick += step
        }
        return out + "</g>\n"
    }

    /// Horizontal grid lines and labels for a value axis; returns the axis top value.
    static func valueAxis(maximum: Double, left: Double, right: Double, top: Double, bottom: Double, format: (Double) -> String) -> (String, Double) {
        let step = niceStep(max(maximum, 1e-9), count: 4)
        let axisTop = max(step, (maximum / step).rounded(.up) * step)
        var out = "<g class=\"grid\">"
        var tick = 0.0
        while tick <= axisTop + step * 1e-6 {
            let y = bottom - tick / axisTop * (bottom - top)
            out += "<line x1=\"\(n(left))\" y1=\"\(n(y))\" x2=\"\(n(right))\" y2=\"\(n(y))\"/>"
            out += "<text class=\"tick\" x=\"\(n(left - 8))\" y=\"\(n(y + 4))\" text-anchor=\"end\">\(HTML.escape(format(tick)))</text>"
            tick += step
        }
        return (out + "</g>\n", axisTop)
    }

    /// A fault window on a time axis: a shaded band from its label row down to the plot's bottom.
    /// - Returns: nil when the window lies outside the axis.
    static func faultBand(
        id: String, label: String, from: Double, to: Double, scale: TimeScale, labelY: Double, bottom: Double, isOpen: Bool
    ) -> String? {
        guard to >= 0, from <= scale.span else { return nil }
        let x1 = scale.x(from)
        let x2 = max(scale.x(to), x1 + 1)
        let plotWidth = scale.right - scale.left
        let anchorEnd = x1 > scale.left + plotWidth * 0.7
        let textX = anchorEnd ? min(x2, scale.right) - 4 : x1 + 4
        let title =
            "\(label): \(Format.number((from * 1000).rounded() / 1000)) s → "
            + (isOpen ? "end (never removed)" : "\(Format.number((to * 1000).rounded() / 1000)) s")
        var out = "<g class=\"fault\" data-fault=\"\(HTML.escape(id))\"><title>\(HTML.escape(title))</title>"
        out += "<rect class=\"fault-band\" x=\"\(n(x1))\" y=\"\(n(labelY))\" width=\"\(n(x2 - x1))\" height=\"\(n(bottom - labelY))\"/>"
        out += "<line class=\"fault-edge\" x1=\"\(n(x1))\" y1=\"\(n(labelY))\" x2=\"\(n(x1))\" y2=\"\(n(bottom))\"/>"
        if !isOpen { out += "<line class=\"fault-edge\" x1=\"\(n(x2))\" y1=\"\(n(labelY))\" x2=\"\(n(x2))\" y2=\"\(n(bottom))\"/>" }
        out +=
            "<text class=\"fault-label\" x=\"\(n(textX))\" y=\"\(n(labelY + 11))\"\(anchorEnd ? " text-anchor=\"end\"" : "")>⚡ \(HTML.escape(label))</text>"
        return out + "</g>\n"
    }
}

/// The experiment on a time axis: one row per activity (hypothesis, method, rollbacks, cleanup),
/// bars from start to end coloured by result, and each fault window shaded across all rows.
enum TimelineChart {
    static let plotLeft = 250.0
    static let plotRight = 940.0
    static let rowHeight = 20.0
    static let faultRowHeight = 16.0
    static let top = 6.0

    private struct Row {
        var label: String
        var bars: [Bar]
    }

    private struct Bar {
        var start: Double
        var end: Double
        var tone: Label.Tone
        var background: Bool
        var title: String
    }

    /// The axis: seconds from the experiment's start to its end.
    static func scale(_ experiment: ExperimentView) -> Charts.TimeScale {
        Charts.TimeScale(span: max(experiment.duration, 0.001), left: plotLeft, right: plotRight)
    }

    static func render(_ experiment: ExperimentView) -> String {
        let groups = self.groups(experiment)
        let scale = self.scale(experiment)
        let faults = experiment.faults
        let plotTop = top + Double(faults.count) * faultRowHeight + (faults.isEmpty ? 0 : 4)
        let rowCount = groups.reduce(0) { $0 + 1 + $1.1.count }
        let plotBottom = plotTop + Double(rowCount) * rowHeight + 4
        let height = plotBottom + 26

        var out = Charts.open("timeline", height: height, label: "Timeline of \(experiment.journal.title): activities and fault windows")
        out += Charts.timeAxis(scale, top: plotTop, bottom: plotBottom)

        var y = plotTop
        for (name, rows) in groups {
            out += "<text class=\"group\" x=\"8\" y=\"\(Charts.n(y + 14))\">\(HTML.escape(name.uppercased()))</text>"
            out += "<line class=\"group-rule\" x1=\"8\" y1=\"\(Charts.n(y + 0.5))\" x2=\"\(Charts.n(plotRight))\" y2=\"\(Charts.n(y + 0.5))\"/>\n"
            y += rowHeight
            for row in rows {
                out +=
                    "<text class=\"row-label\" x=\"20\" y=\"\(Charts.n(y + 14))\">\(HTML.escape(Format.truncate(row.label, 34)))<title>\(HTML.escape(row.label))</title></text>"
                for bar in row.bars {
                    let x1 = scale.x(bar.start)
                    let x2 = max(scale.x(bar.end), x1 + 3)
                    out +=
                        "<rect class=\"bar \(bar.tone.rawValue)\(bar.background ? " background" : "")\" x=\"\(Charts.n(x1))\" y=\"\(Charts.n(y + 5))\" "
                    out += "width=\"\(Charts.n(x2 - x1))\" height=\"10\" rx=\"2\"><title>\(HTML.escape(bar.title))</title></rect>"
                }
                out += "\n"
                y += rowHeight
            }
        }
        for (index, fault) in faults.enumerated() {
            let from = experiment.start.map { fault.start.timeIntervalSince($0) } ?? 0
            let to = experiment.start.map { fault.end.timeIntervalSince($0) } ?? 0
            if let band = Charts.faultBand(
                id: fault.window.id, label: fault.window.label, from: from, to: to, scale: scale, labelY: top + Double(index) * faultRowHeight,
                bottom: plotBottom, isOpen: fault.isOpen)
            {
                out += band
            }
        }
        return out + "</svg>\n"
    }

    private static func groups(_ experiment: ExperimentView) -> [(String, [Row])] {
        let journal = experiment.journal
        func bar(_ record: RunRecord, _ where: String) -> Bar {
            let start = experiment.offset(record.start) ?? 0
            let end = experiment.offset(record.end) ?? start
            var title = "\(record.name) (\(`where`)): \(Label.result(record)), \(Format.duration(record.duration)) at \(Format.offset(start))"
            if let message = record.toleranceMessage ?? record.exception?.first { title += " — \(message)" }
            return Bar(start: start, end: end, tone: Label.tone(record), background: record.background == true, title: title)
        }
        func rows(_ records: [RunRecord], _ where: String) -> [Row] {
            records.map { Row(label: $0.name, bars: [bar($0, `where`)]) }
        }
        var groups: [(String, [Row])] = []
        for check in experiment.checks where check.label == "before" {
            groups.append(("Hypothesis before", rows(check.record.probes, "hypothesis before")))
        }
        if !experiment.method.isEmpty { groups.append(("Method", rows(experiment.method, "method"))) }
        let during = experiment.checks.filter { $0.label.hasPrefix("during") }
        if !during.isEmpty {
            var merged: [Row] = []
            for check in during {
                for record in check.record.probes {
                    let item = bar(record, "hypothesis \(check.label)")
                    if let index = merged.firstIndex(where: { $0.label == record.name }) {
                        merged[index].bars.append(item)
                    } else {
                        merged.append(Row(label: record.name, bars: [item]))
                    }
                }
            }
            groups.append(("Hypothesis during", merged))
        }
        for check in experiment.checks where check.label == "after" {
            groups.append(("Hypothesis after", rows(check.record.probes, "hypothesis after")))
        }
        if !experiment.rollbacks.isEmpty { groups.append(("Rollbacks", rows(experiment.rollbacks, "rollbacks"))) }
        if !journal.cleanup.isEmpty {
            groups.append(
                (
                    "Cleanup",
                    journal.cleanup.map { record in
                        let start = experiment.offset(record.start) ?? 0
                        let end = experiment.offset(record.end) ?? start
                        let title = "\(record.description): \(record.status.rawValue)" + (record.error.map { " — \($0)" } ?? "")
                        return Row(
                            label: record.description,
                            bars: [Bar(start: start, end: end, tone: Label.tone(cleanupStatus: record.status), background: false, title: title)])
                    }
                ))
        }
        return groups.filter { !$0.1.isEmpty }
    }
}

/// Charts of one load run: latency over time, requests and errors per second (both with the fault
/// windows), and the status-code distribution.
enum LoadCharts {
    static let plotLeft = 64.0
    static let plotRight = 940.0
    static let top = 6.0
    static let faultRowHeight = 16.0

    /// When the load started: its `started`, else the activity's start.
    static func origin(_ load: ExperimentView.LoadRun) -> Date? {
        load.result.started?.date ?? load.record.start.date
    }

    /// The faults that overlap the load, as seconds since the load started.
    static func faults(_ load: ExperimentView.LoadRun, _ experiment: ExperimentView) -> [(ExperimentView.Fault, Double, Double)] {
        guard let origin = origin(load) else { return [] }
        let span = load.result.spanSeconds
        return experiment.faults.compactMap { fault in
            let from = fault.start.timeIntervalSince(origin)
            let to = fault.end.timeIntervalSince(origin)
            return to >= 0 && from <= span ? (fault, from, to) : nil
        }
    }

    /// What every time chart of a load shares: fault-label rows, the value grid, the time axis and the
    /// fault bands; the chart draws its data into ``svg`` and closes with ``finish(legend:)``.
    private struct Frame {
        let scale: Charts.TimeScale
        let top: Double
        let bottom: Double
        /// The value at the top of the plot.
        let axisTop: Double
        var svg: String

        func y(_ value: Double) -> Double { bottom - value / axisTop * (bottom - top) }

        func finish(legend items: [(String, String)]) -> String {
            var out = svg + "<g class=\"legend\">"
            var x = plotRight
            for (label, style) in items.reversed() {
                x -= Double(label.count) * 6.5 + 26
                out += "<rect class=\"swatch \(style)\" x=\"\(Charts.n(x))\" y=\"\(Charts.n(bottom + 26))\" width=\"14\" height=\"8\" rx=\"2\"/>"
                out += "<text x=\"\(Charts.n(x + 19))\" y=\"\(Charts.n(bottom + 34))\">\(HTML.escape(label))</text>"
            }
            out +=
                "</g>\n<text class=\"axis-note\" x=\"\(Charts.n(plotLeft))\" y=\"\(Charts.n(bottom + 34))\">seconds since the load started</text>\n"
            return out + "</svg>\n"
        }
    }

    private static func frame(
        _ kind: String, label: String, span: Double, faults: [(ExperimentView.Fault, Double, Double)], plotHeight: Double, maximum: Double,
        format: (Double) -> String
    ) -> Frame {
        let scale = Charts.TimeScale(span: span, left: plotLeft, right: plotRight)
        let plotTop = top + Double(faults.count) * faultRowHeight + (faults.isEmpty ? 4 : 6)
        let plotBottom = plotTop + plotHeight
        var svg = Charts.open(kind, height: plotBottom + 40, label: label)
        let (grid, axisTop) = Charts.valueAxis(maximum: maximum, left: plotLeft, right: plotRight, top: plotTop, bottom: plotBottom, format: format)
        svg += grid + Charts.timeAxis(scale, top: plotTop, bottom: plotBottom)
        for (index, (fault, from, to)) in faults.enumerated() {
            svg +=
                Charts.faultBand(
                    id: fault.window.id, label: fault.window.label, from: from, to: to, scale: scale, labelY: top + Double(index) * faultRowHeight,
                    bottom: plotBottom, isOpen: fault.isOpen) ?? ""
        }
        return Frame(scale: scale, top: plotTop, bottom: plotBottom, axisTop: axisTop, svg: svg)
    }

    /// A long run's series merged into at most `limit` points of `width` seconds each, so an
    /// hour-long soak stays a small SVG: counts become per-second averages (a bucket with any errors
    /// keeps at least one), p50 the average of its seconds, and p99 the worst of them.
    static func condensed(_ timeline: [LoadSecond], limit: Int = 600) -> (points: [LoadSecond], width: Int) {
        guard timeline.count > limit else { return (timeline, 1) }
        let width = Int((Double(timeline.count) / Double(limit)).rounded(.up))
        var buckets: [Int: [LoadSecond]] = [:]
        for point in timeline { buckets[point.second / width * width, default: []].append(point) }
        let points = buckets.keys.sorted().map { start -> LoadSecond in
            let seconds = buckets[start]!
            let answered = seconds.filter { $0.count > 0 }
            let count = seconds.reduce(0) { $0 + $1.count }
            let errors = seconds.reduce(0) { $0 + $1.errors }
            return LoadSecond(
                second: start, at: seconds.first?.at, count: Int((Double(count) / Double(width)).rounded()),
                errors: errors > 0 ? max(1, Int((Double(errors) / Double(width)).rounded())) : 0,
                p50Ms: answered.isEmpty ? 0 : answered.reduce(0) { $0 + $1.p50Ms } / Double(answered.count), p99Ms: answered.map(\.p99Ms).max() ?? 0)
        }
        return (points, width)
    }

    /// p50 and p99 latency per second, with the band between them shaded.
    static func latency(_ load: ExperimentView.LoadRun, _ experiment: ExperimentView) -> String {
        let (series, width) = condensed(load.result.timeline)
        let points = series.filter { $0.count > 0 }
        var frame = frame(
            "latency", label: "Latency over time of \(load.record.name): p50 and p99 per second", span: load.result.spanSeconds,
            faults: faults(load, experiment), plotHeight: 170, maximum: points.map { max($0.p99Ms, $0.p50Ms) }.max() ?? 0, format: Format.ms)
        func x(_ point: LoadSecond) -> String { Charts.n(frame.scale.x(Double(point.second) + Double(width) / 2)) }
        // Lines break where a second had no responses: no latency was measured there.
        var segments: [[LoadSecond]] = []
        var previous: Int?
        for point in points {
            if let previous, point.second == previous + width, !segments.isEmpty {
                segments[segments.count - 1].append(point)
            } else {
                segments.append([point])
            }
            previous = point.second
        }
        for segment in segments {
            let upper = segment.map { "\(x($0)),\(Charts.n(frame.y($0.p99Ms)))" }
            let lower = segment.map { "\(x($0)),\(Charts.n(frame.y($0.p50Ms)))" }
            frame.svg += "<polygon class=\"spread\" points=\"\((upper + lower.reversed()).joined(separator: " "))\"/>\n"
            frame.svg += "<polyline class=\"line p99\" points=\"\(upper.joined(separator: " "))\"/>\n"
            frame.svg += "<polyline class=\"line p50\" points=\"\(lower.joined(separator: " "))\"/>\n"
        }
        if points.count <= 90 {
            frame.svg += "<g class=\"dots\">"
            for point in points {
                for (value, name) in [(point.p99Ms, "p99"), (point.p50Ms, "p50")] {
                    frame.svg += "<circle class=\"dot \(name)\" cx=\"\(x(point))\" cy=\"\(Charts.n(frame.y(value)))\" r=\"2.5\">"
                    frame.svg += "<title>second \(point.second): \(name) \(Format.ms(value))</title></circle>"
                }
            }
            frame.svg += "</g>\n"
        }
        return frame.finish(legend: [("p50", "p50"), ("p99", "p99")])
    }

    /// Requests per second with the failed ones on top, so an outage shows as a red gap.
    static func throughput(_ load: ExperimentView.LoadRun, _ experiment: ExperimentView) -> String {
        let (timeline, width) = condensed(load.result.timeline)
        var frame = frame(
            "errors", label: "Requests and errors per second of \(load.record.name)", span: load.result.spanSeconds, faults: faults(load, experiment),
            plotHeight: 130, maximum: Double(timeline.map(\.count).max() ?? 0), format: { Format.integer(Int($0.rounded())) })
        func barHeight(_ count: Int) -> Double { Double(count) / frame.axisTop * (frame.bottom - frame.top) }
        frame.svg += "<g class=\"bars\">"
        for point in timeline {
            let x1 = frame.scale.x(Double(point.second))
            let x2 = frame.scale.x(Double(point.second + width))
            let gap = min(2, (x2 - x1) * 0.15)
            let barWidth = Charts.n(max(0.5, x2 - x1 - 2 * gap))
            let ok = max(0, point.count - point.errors)
            let when = width == 1 ? "second \(point.second)" : "seconds \(point.second)–\(point.second + width - 1), per second"
            let title = "<title>\(when): \(Format.integer(point.count)) requests, \(Format.integer(point.errors)) failed</title>"
            frame.svg +=
                "<rect class=\"req\" x=\"\(Charts.n(x1 + gap))\" y=\"\(Charts.n(frame.bottom - barHeight(ok)))\" width=\"\(barWidth)\" height=\"\(Charts.n(barHeight(ok)))\">\(title)</rect>"
            if point.errors > 0 {
                frame.svg +=
                    "<rect class=\"err\" x=\"\(Charts.n(x1 + gap))\" y=\"\(Charts.n(frame.bottom - barHeight(point.count)))\" width=\"\(barWidth)\" "
                frame.svg += "height=\"\(Charts.n(max(1.5, barHeight(point.errors))))\">\(title)</rect>"
            }
        }
        frame.svg += "</g>\n"
        return frame.finish(legend: [("succeeded/s", "req"), ("failed/s", "err")])
    }

    /// Responses by status code, then failures without a response (refused, timeouts, ...), as bars
    /// with counts and shares of all requests.
    static func statusCodes(_ load: ExperimentView.LoadRun) -> String {
        let overall = load.result.overall
        var rows: [(label: String, count: Int, style: String)] = overall.statusCodes.map { code in
            let style =
                code.label.first.map { first -> String in
                    switch first {
                    case "2": "s2xx"
                    case "3": "s3xx"
                    case "4": "s4xx"
                    default: "s5xx"
                    }
                } ?? "s5xx"
            return (reasonPhrase(code.label), code.count, style)
        }
        rows += overall.errors.filter { LoadStats.connectionErrorClasses.contains($0.label) && $0.count > 0 }.map {
            (Label.errorClass($0.label), $0.count, "conn")
        }
        let total = max(overall.count, rows.reduce(0) { $0 + $1.count }, 1)
        let labelWidth = 200.0
        let barLeft = 210.0
        let barRight = 800.0
        let height = 8 + Double(max(rows.count, 1)) * 26
        var out = Charts.open("status", height: height, label: "Status codes of \(load.record.name)")
        if rows.isEmpty {
            out += "<text class=\"tick\" x=\"\(Charts.n(barLeft))\" y=\"24\">no responses</text>\n"
        }
        for (index, row) in rows.enumerated() {
            let y = 6 + Double(index) * 26
            let share = Double(row.count) / Double(total)
            let width = max(2, share * (barRight - barLeft))
            out +=
                "<text class=\"row-label\" x=\"\(Charts.n(labelWidth))\" y=\"\(Charts.n(y + 15))\" text-anchor=\"end\">\(HTML.escape(row.label))</text>"
            out +=
                "<rect class=\"track\" x=\"\(Charts.n(barLeft))\" y=\"\(Charts.n(y + 3))\" width=\"\(Charts.n(barRight - barLeft))\" height=\"16\" rx=\"3\"/>"
            out +=
                "<rect class=\"status-bar \(row.style)\" x=\"\(Charts.n(barLeft))\" y=\"\(Charts.n(y + 3))\" width=\"\(Charts.n(width))\" height=\"16\" rx=\"3\"/>"
            out +=
                "<text class=\"value\" x=\"\(Charts.n(barRight + 10))\" y=\"\(Charts.n(y + 15))\">\(Format.integer(row.count)) · \(Format.percent(share))</text>\n"
        }
        return out + "</svg>\n"
    }

    /// `503 Service Unavailable`.
    static func reasonPhrase(_ code: String) -> String {
        let phrases = [
            "200": "OK", "201": "Created", "202": "Accepted", "204": "No Content", "301": "Moved Permanently", "302": "Found", "304": "Not Modified",
            "307": "Temporary Redirect", "308": "Permanent Redirect", "400": "Bad Request", "401": "Unauthorized", "403": "Forbidden",
            "404": "Not Found", "405": "Method Not Allowed", "408": "Request Timeout", "409": "Conflict", "413": "Content Too Large",
            "422": "Unprocessable Content", "429": "Too Many Requests", "500": "Internal Server Error", "501": "Not Implemented",
            "502": "Bad Gateway", "503": "Service Unavailable", "504": "Gateway Timeout",
        ]
        return phrases[code].map { "\(code) \($0)" } ?? code
    }

    /// p99 per second of the same load in two runs on one axis, with the later run's fault windows.
    static func comparison(_ pair: Comparison.LoadPair, after experiment: ExperimentView?) -> String? {
        guard let before = pair.baseline, let after = pair.after else { return nil }
        let series = [(condensed(before.result.timeline), "before-line"), (condensed(after.result.timeline), "after-line")]
        var frame = frame(
            "compare-latency", label: "p99 latency per second of \(pair.name), before and after",
            span: max(before.result.spanSeconds, after.result.spanSeconds), faults: experiment.map { faults(after, $0) } ?? [], plotHeight: 170,
            maximum: series.flatMap { $0.0.points.filter { $0.count > 0 }.map(\.p99Ms) }.max() ?? 0, format: Format.ms)
        for ((timeline, width), style) in series {
            let points = timeline.filter { $0.count > 0 }.map {
                "\(Charts.n(frame.scale.x(Double($0.second) + Double(width) / 2))),\(Charts.n(frame.y($0.p99Ms)))"
            }
            if !points.isEmpty { frame.svg += "<polyline class=\"line \(style)\" points=\"\(points.joined(separator: " "))\"/>\n" }
        }
        return frame.finish(legend: [("p99 before", "before-line"), ("p99 after", "after-line")])
    }
}
