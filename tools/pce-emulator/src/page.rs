//! The emulator's HTML page: what it received, as a traffic map (hosts as
//! nodes, each traffic key a labelled edge, as the PCE's map draws them) and
//! as a table. Self-contained: the drawing is an inline script over the
//! page's own data, no external scripts, styles or fonts.

use crate::received::Received;

/// The page for `received`; `<` in the embedded JSON is escaped so data can
/// never close the script element.
pub fn render(received: &Received) -> String {
    let flows = received.to_json();
    let data = flows["flows"].to_string().replace('<', "\\u003c");
    let mut rows = String::new();
    for f in flows["flows"].as_array().into_iter().flatten() {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            f["src"].as_str().unwrap_or_default(),
            f["dst"].as_str().unwrap_or_default(),
            f["dst_port"],
            f["protocol"],
            f["connections"],
            f["packets"],
            f["bytes"]
        ));
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>flowlink PCE emulator</title>\
         <meta http-equiv=\"refresh\" content=\"10\"><style>{STYLE}</style></head><body>\
         <h1>flowlink PCE emulator</h1>\
         <p>{batches} batches, {keys} flow keys (JSON: <a href=\"/emulator/flows\">/emulator/flows</a>)</p>\
         <svg id=\"traffic-map\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" \
         aria-label=\"traffic map\"></svg>\
         <table><tr><th>src</th><th>dst</th><th>dst port</th><th>proto</th>\
         <th>connections</th><th>packets</th><th>bytes</th></tr>\n{rows}</table>\
         <script type=\"application/json\" id=\"flows\">{data}</script>\
         <script>{SCRIPT}</script></body></html>",
        batches = flows["batches"],
        keys = flows["flows"].as_array().map_or(0, Vec::len),
    )
}

const STYLE: &str = "body{font-family:sans-serif;margin:1em}\
table{border-collapse:collapse;margin-top:1em}td,th{border:1px solid #999;padding:2px 6px}\
#traffic-map{border:1px solid #ccc;background:#fafafa;display:block}\
.host circle{fill:#2f6fb0}.host text{font-size:11px}\
.edge path{fill:none;stroke:#6a9f3a;stroke-opacity:.7}.edge text{font-size:10px;fill:#333}";

/// Hosts on a circle in address order; every key a curved arrow from
/// source to destination (keys between the same two hosts fan out), its
/// width growing with the bytes, labelled `proto/port`.
const SCRIPT: &str = r#"
(function () {
  var flows = JSON.parse(document.getElementById('flows').textContent);
  var svg = document.getElementById('traffic-map');
  var NS = 'http://www.w3.org/2000/svg';
  var hosts = Array.from(new Set(flows.flatMap(function (f) { return [f.src, f.dst]; }))).sort();
  var size = Math.max(420, Math.min(1400, 160 + hosts.length * 14));
  svg.setAttribute('width', size); svg.setAttribute('height', size);
  svg.setAttribute('viewBox', '0 0 ' + size + ' ' + size);
  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    (parent || svg).appendChild(e); return e;
  }
  var defs = el('defs', {});
  var marker = el('marker', {id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5,
    markerWidth: 6, markerHeight: 6, orient: 'auto-start-reverse'}, defs);
  el('path', {d: 'M0,0 L10,5 L0,10 z', fill: '#6a9f3a'}, marker);
  var c = size / 2, r = size / 2 - 70, at = {};
  hosts.forEach(function (h, i) {
    var a = 2 * Math.PI * i / Math.max(1, hosts.length) - Math.PI / 2;
    at[h] = [c + r * Math.cos(a), c + r * Math.sin(a)];
  });
  var names = {1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6', 132: 'sctp'};
  var pairs = {};
  flows.forEach(function (f) {
    var pair = [f.src, f.dst].sort().join(' ');
    (pairs[pair] = pairs[pair] || []).push(f);
  });
  Object.keys(pairs).forEach(function (pair) {
    var keys = pairs[pair];
    keys.forEach(function (f, k) {
      var a = at[f.src], b = at[f.dst];
      var mx = (a[0] + b[0]) / 2, my = (a[1] + b[1]) / 2;
      var dx = b[0] - a[0], dy = b[1] - a[1], len = Math.hypot(dx, dy) || 1;
      var bend = 25 + 18 * (k - (keys.length - 1) / 2) * (f.src < f.dst ? 1 : -1);
      var qx = mx - dy / len * bend, qy = my + dx / len * bend;
      var g = el('g', {'class': 'edge', 'data-src': f.src, 'data-dst': f.dst,
        'data-port': f.dst_port, 'data-proto': f.protocol});
      var label = (names[f.protocol] || ('proto ' + f.protocol)) + '/' + f.dst_port;
      el('title', {}, g).textContent = f.src + ' \u2192 ' + f.dst + ' ' + label + ': ' +
        f.connections + ' connections, ' + f.packets + ' packets, ' + f.bytes + ' bytes';
      el('path', {d: 'M' + a[0] + ',' + a[1] + ' Q' + qx + ',' + qy + ' ' + b[0] + ',' + b[1],
        'stroke-width': Math.max(1, Math.min(8, Math.log10(1 + f.bytes))),
        'marker-end': 'url(#arrow)'}, g);
      el('text', {x: (mx + qx) / 2, y: (my + qy) / 2, 'text-anchor': 'middle'}, g).textContent = label;
    });
  });
  hosts.forEach(function (h) {
    var g = el('g', {'class': 'host', 'data-host': h});
    el('circle', {cx: at[h][0], cy: at[h][1], r: 6}, g);
    var right = at[h][0] >= c;
    el('text', {x: at[h][0] + (right ? 9 : -9), y: at[h][1] + 4,
      'text-anchor': right ? 'start' : 'end'}, g).textContent = h;
  });
})();
"#;
