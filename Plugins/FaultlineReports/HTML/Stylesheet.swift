/// The report's only stylesheet, inlined: light and dark themes from `prefers-color-scheme`, and a
/// print style that forces the light theme and keeps cards and charts whole on a page.
enum Stylesheet {
    private static let light = """
        --bg: #f5f6f8; --surface: #ffffff; --surface-2: #f0f2f5; --text: #1f2328; --muted: #5d6671; --border: #d8dee4; --grid: #e8ecf0;
        --ok: #1a7f37; --ok-bg: #dcf5e3; --bad: #c9252d; --bad-bg: #ffe9e8; --warn: #9a6700; --warn-bg: #fff5c2; --skip: #6e7781; --skip-bg: #eef1f4;
        --accent: #5b3cc4; --link: #0969da; --fault: #d1242f; --fault-fill: rgba(209, 36, 47, 0.09); --p50: #0969da; --p99: #8250df;
        --spread: rgba(130, 80, 223, 0.10); --req: #9aa5b1; --err: #d1242f; --conn: #953800; --track: #eef1f4;
        --s2xx: #2da44e; --s3xx: #0969da; --s4xx: #bf8700; --s5xx: #d1242f; --shadow: 0 1px 2px rgba(31, 35, 40, 0.06), 0 1px 12px rgba(31, 35, 40, 0.04);
        """

    private static let dark = """
        --bg: #0d1117; --surface: #151b23; --surface-2: #1b232d; --text: #e6edf3; --muted: #9198a1; --border: #2f3742; --grid: #232a34;
        --ok: #3fb950; --ok-bg: rgba(46, 160, 67, 0.16); --bad: #ff6b61; --bad-bg: rgba(248, 81, 73, 0.16); --warn: #d8a52c; --warn-bg: rgba(187, 128, 9, 0.18);
        --skip: #9198a1; --skip-bg: rgba(110, 118, 129, 0.18); --accent: #a88bfa; --link: #58a6ff; --fault: #ff7b72; --fault-fill: rgba(255, 123, 114, 0.12);
        --p50: #58a6ff; --p99: #bc8cff; --spread: rgba(188, 140, 255, 0.13); --req: #4d5866; --err: #ff6b61; --conn: #f0883e; --track: #1f2731;
        --s2xx: #3fb950; --s3xx: #58a6ff; --s4xx: #d8a52c; --s5xx: #ff6b61; --shadow: none;
        """

    static let css = """
        :root { color-scheme: light dark; \(light) }
        @media (prefers-color-scheme: dark) { :root { \(dark) } }
        * { box-sizing: border-box; }
        html { -webkit-text-size-adjust: 100%; }
        body { margin: 0; background: var(--bg); color: var(--text); font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif; }
        code, pre, .mono { font-family: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono", monospace; font-size: 0.86em; }
        a { color: var(--link); text-decoration: none; }
        a:hover { text-decoration: underline; }
        .page { max-width: 1120px; margin: 0 auto; padding: 32px 24px 48px; }
        .eyebrow { text-transform: uppercase; letter-spacing: 0.12em; font-size: 12px; font-weight: 600; color: var(--accent); margin: 0 0 6px; }
        h1 { font-size: 30px; line-height: 1.2; margin: 0 0 10px; letter-spacing: -0.01em; }
        h2 { font-size: 21px; line-height: 1.3; margin: 0; }
        h3 { font-size: 15px; text-transform: uppercase; letter-spacing: 0.06em; color: var(--muted); margin: 28px 0 10px; font-weight: 650; }
        h4 { font-size: 14px; margin: 18px 0 8px; }
        .lead { color: var(--muted); margin: 0 0 20px; }
        .card { background: var(--surface); border: 1px solid var(--border); border-radius: 12px; padding: 22px 24px; margin: 0 0 24px; box-shadow: var(--shadow); }
        .tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 12px; margin: 20px 0 24px; }
        .tile { background: var(--surface); border: 1px solid var(--border); border-radius: 10px; padding: 12px 14px; box-shadow: var(--shadow); }
        .tile .n { font-size: 26px; font-weight: 700; line-height: 1.1; font-variant-numeric: tabular-nums; }
        .tile .k { color: var(--muted); font-size: 13px; }
        .tile.ok .n { color: var(--ok); } .tile.bad .n { color: var(--bad); } .tile.warn .n { color: var(--warn); }
        .pill { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 12.5px; font-weight: 600; white-space: nowrap; }
        .pill.ok { color: var(--ok); background: var(--ok-bg); }
        .pill.bad { color: var(--bad); background: var(--bad-bg); }
        .pill.warn { color: var(--warn); background: var(--warn-bg); }
        .pill.skip { color: var(--skip); background: var(--skip-bg); }
        .pill.big { font-size: 14px; padding: 3px 12px; }
        .exp-head { display: flex; align-items: baseline; gap: 12px; flex-wrap: wrap; }
        .exp-head .num { color: var(--muted); font-weight: 600; }
        .reason { margin: 14px 0 0; padding: 10px 14px; border-left: 4px solid var(--border); background: var(--surface-2); border-radius: 0 8px 8px 0; }
        .reason.bad { border-color: var(--bad); } .reason.warn { border-color: var(--warn); } .reason.ok { border-color: var(--ok); }
        .description { color: var(--muted); margin: 10px 0 0; }
        dl.facts { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 10px 18px; margin: 18px 0 0; }
        dl.facts div { min-width: 0; }
        dl.facts dt { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: 0.05em; }
        dl.facts dd { margin: 2px 0 0; overflow-wrap: anywhere; font-variant-numeric: tabular-nums; }
        .scroll { overflow-x: auto; }
        table { border-collapse: collapse; width: 100%; font-size: 14px; font-variant-numeric: tabular-nums; }
        th, td { padding: 7px 10px; border-bottom: 1px solid var(--border); text-align: left; vertical-align: top; }
        th { color: var(--muted); font-weight: 600; font-size: 12.5px; text-transform: uppercase; letter-spacing: 0.04em; white-space: nowrap; }
        td.num, th.num { text-align: right; white-space: nowrap; }
        tbody tr:last-child td { border-bottom: none; }
        table.compact { font-size: 13px; }
        table.compact th, table.compact td { padding: 6px 7px; }
        table.compact td:first-child { white-space: nowrap; }
        table.summary td:nth-child(2) { min-width: 14em; }
        table.summary td:nth-child(2) .small { margin-top: 2px; }
        table.hypothesis { table-layout: fixed; }
        table.hypothesis th:nth-child(1) { width: 28%; } table.hypothesis th:nth-child(2) { width: 24%; }
        table.hypothesis th:nth-child(3) { width: 13%; } table.hypothesis th:nth-child(4) { width: 35%; }
        table.hypothesis td { overflow-wrap: anywhere; }
        tr.total td { font-weight: 650; border-top: 2px solid var(--border); }
        table.phases tr.fault td { background: var(--fault-fill); }
        .muted { color: var(--muted); }
        .small { font-size: 13px; }
        .check-title { display: flex; gap: 10px; align-items: baseline; margin: 16px 0 6px; font-weight: 600; }
        .check-title .muted { font-weight: 400; }
        .codes { display: flex; flex-direction: column; gap: 1px; white-space: nowrap; }
        .better { color: var(--ok); font-weight: 600; } .worse { color: var(--bad); font-weight: 600; }
        figure { margin: 6px 0 18px; }
        figcaption { color: var(--muted); font-size: 13px; margin: 4px 0 0; }
        svg.chart { display: block; width: 100%; height: auto; }
        svg.chart text { fill: var(--muted); font-size: 11.5px; font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
        svg.chart text.row-label { fill: var(--text); font-size: 12px; }
        svg.chart text.group { font-size: 10.5px; font-weight: 700; letter-spacing: 0.08em; }
        svg.chart text.value { fill: var(--text); font-size: 12px; }
        svg.chart text.fault-label { fill: var(--fault); font-weight: 600; }
        svg.chart .grid line { stroke: var(--grid); stroke-width: 1; }
        svg.chart .group-rule { stroke: var(--border); stroke-width: 1; }
        svg.chart .bar.ok { fill: var(--ok); } svg.chart .bar.bad { fill: var(--bad); } svg.chart .bar.warn { fill: var(--warn); } svg.chart .bar.skip { fill: var(--skip); }
        svg.chart .bar.background { fill-opacity: 0.45; stroke-width: 1; }
        svg.chart .bar.ok.background { stroke: var(--ok); } svg.chart .bar.bad.background { stroke: var(--bad); }
        svg.chart .fault-band { fill: var(--fault-fill); }
        svg.chart .fault-edge { stroke: var(--fault); stroke-width: 1; stroke-dasharray: 4 3; opacity: 0.8; }
        svg.chart .line { fill: none; stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; }
        svg.chart .line.p50, svg.chart .swatch.p50 { stroke: var(--p50); } svg.chart .line.p99 { stroke: var(--p99); }
        svg.chart .dot.p50, svg.chart .swatch.p50 { fill: var(--p50); } svg.chart .dot.p99, svg.chart .swatch.p99 { fill: var(--p99); }
        svg.chart .spread { fill: var(--spread); }
        svg.chart .line.before-line { stroke: var(--req); stroke-dasharray: 5 4; } svg.chart .swatch.before-line { fill: var(--req); }
        svg.chart .line.after-line { stroke: var(--p99); } svg.chart .swatch.after-line { fill: var(--p99); }
        svg.chart .req, svg.chart .swatch.req { fill: var(--req); } svg.chart .err, svg.chart .swatch.err { fill: var(--err); }
        svg.chart .track { fill: var(--track); }
        svg.chart .s2xx { fill: var(--s2xx); } svg.chart .s3xx { fill: var(--s3xx); } svg.chart .s4xx { fill: var(--s4xx); } svg.chart .s5xx { fill: var(--s5xx); }
        svg.chart .conn { fill: var(--conn); }
        svg.chart .before { fill: var(--req); } svg.chart .after.better { fill: var(--ok); } svg.chart .after.worse { fill: var(--bad); } svg.chart .after.same { fill: var(--p50); }
        .charts-2 { display: grid; grid-template-columns: 1fr; gap: 4px; }
        .failure { border: 1px solid var(--border); border-left: 4px solid var(--bad); border-radius: 0 8px 8px 0; padding: 10px 14px; margin: 0 0 10px; background: var(--surface-2); }
        .failure.warn { border-left-color: var(--warn); }
        .failure.ok, .failure.skip { border-left-color: var(--border); }
        .failure .where { color: var(--muted); font-size: 13px; }
        pre { background: var(--surface-2); border: 1px solid var(--border); border-radius: 8px; padding: 10px 12px; overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere; margin: 8px 0 0; }
        details { margin: 14px 0 0; }
        details summary { cursor: pointer; color: var(--muted); font-weight: 600; }
        details .output { margin: 10px 0 0; }
        footer { color: var(--muted); font-size: 13px; text-align: center; margin-top: 32px; }
        @media (max-width: 640px) { .page { padding: 18px 12px 32px; } .card { padding: 16px; } h1 { font-size: 24px; } }
        @media print {
          :root { color-scheme: light; \(light) }
          body { background: #ffffff; font-size: 12px; }
          .page { max-width: none; padding: 0; }
          .card, .tile { box-shadow: none; }
          .card { break-inside: auto; border-color: #cccccc; }
          figure, table, .failure, .check-title { break-inside: avoid; }
          h2, h3, h4 { break-after: avoid; }
          article.card { break-before: page; }
          article.card:first-of-type { break-before: auto; }
          .scroll { overflow: visible; }
          details { display: none; }
          * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
        }
        """
}
