//! The one chart of BENCHMARKS.md, drawn as plain SVG here (no plotting dependency): messages
//! synced over the backfill's seconds for m365sync (through its plugins, and the floor) and
//! for the Python peer, all from the same invocation.

use super::peer::PeerResult;

const W: f64 = 640.0;
const H: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

/// One curve: its legend, its colour, and (seconds, messages) points.
type Series<'a> = (&'a str, &'a str, &'a [(f64, u64)]);

/// Cumulative messages against seconds, one polyline per client.
pub fn throughput_svg(r: &PeerResult) -> String {
    let mut series: Vec<Series> = Vec::new();
    if let Some(i) = &r.ingest {
        series.push(("m365sync (default plugins)", "#1f77b4", &i.timeline));
    }
    if let Some(f) = &r.floor {
        series.push(("m365sync floor (plugins bypassed)", "#2ca02c", &f.timeline));
    }
    series.push(("Python msgraph-sdk peer", "#d62728", &r.peer.timeline));
    let max_t = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let max_n = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let x = |t: f64| LEFT + (W - LEFT - RIGHT) * t / max_t;
    let y = |n: f64| H - BOTTOM - (H - TOP - BOTTOM) * n / max_n;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">Messages synced (read and written) over \
         the backfill (same simulator, same run)</text>\n",
        W / 2.0
    );
    // Axes and ticks.
    svg.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/>\n\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{0}\" stroke=\"black\"/>\n",
        H - BOTTOM,
        W - RIGHT
    ));
    for i in 0..=4 {
        let t = max_t * i as f64 / 4.0;
        let n = max_n * i as f64 / 4.0;
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{:.0}</text>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n\
             <line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\n",
            x(t),
            H - BOTTOM + 16.0,
            t,
            LEFT - 6.0,
            y(n) + 4.0,
            super::report::thousands(n.round() as u64),
            y(n),
            W - RIGHT,
            y(n)
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">seconds</text>\n",
        (LEFT + W - RIGHT) / 2.0,
        H - 12.0
    ));
    for (i, (name, color, points)) in series.iter().enumerate() {
        let pts: Vec<String> = points
            .iter()
            .map(|(t, n)| format!("{:.1},{:.1}", x(*t), y(*n as f64)))
            .collect();
        svg.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n\
             <rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"3\" fill=\"{color}\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\">{name}</text>\n",
            pts.join(" "),
            LEFT + 16.0,
            TOP + 10.0 + 16.0 * i as f64,
            LEFT + 34.0,
            TOP + 15.0 + 16.0 * i as f64
        ));
    }
    svg.push_str("</svg>\n");
    svg
}
