package dev.valve.observe;

import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code GET /status}: the {@link StatusReport} as one self-contained HTML page (inline style, no
 * script, no external asset) that reloads itself every two seconds.
 */
final class StatusPage {
    private static final String STYLE = """
            body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;background:#f6f7f9}
            h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:24px 0 8px}
            .sub{color:#5b6475;margin-bottom:16px}
            .cards{display:flex;gap:12px;flex-wrap:wrap}
            .card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:10px 16px;min-width:110px}
            .card b{display:block;font-size:22px}
            table{border-collapse:collapse;background:#fff;border:1px solid #dde1e8}
            th,td{padding:4px 12px;text-align:left;border-bottom:1px solid #eef0f4}
            th{background:#eef0f4;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
            .busy{color:#b35c00;font-weight:600}.idle{color:#287d3c}.bad{color:#b3261e;font-weight:600}
            .ok{color:#287d3c;font-weight:600}
            """;

    private StatusPage() {
    }

    @SuppressWarnings("unchecked")
    static String render(Map<String, Object> report) {
        Map<String, Object> pool = (Map<String, Object>) report.get("pool");
        Map<String, Long> requests = (Map<String, Long>) report.get("requests");
        long total = requests.values().stream().mapToLong(Long::longValue).sum();
        long serverErrors = requests.entrySet().stream().filter(e -> e.getKey().startsWith("5"))
                .mapToLong(Map.Entry::getValue).sum();
        StringBuilder html = new StringBuilder(8192);
        html.append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">")
                .append("<meta http-equiv=\"refresh\" content=\"2\">")
                .append("<title>valve ").append(escape(report.get("url"))).append("</title><style>").append(STYLE)
                .append("</style></head><body>");
        html.append("<h1>valve <span class=\"")
                .append(Boolean.TRUE.equals(report.get("ready")) ? "ok\">ready" : "bad\">not ready")
                .append("</span></h1><div class=\"sub\">").append(escape(report.get("url"))).append(" &middot; ")
                .append(escape(report.get("state"))).append(" &middot; ").append(escape(report.get("readiness")));
        if (report.get("upstream") != null) {
            html.append(" &middot; pods of ").append(escape(report.get("upstream")));
        } else {
            html.append(" &middot; n_min ").append(report.get("n_min")).append(", n_max ").append(report.get("n_max"));
        }
        html.append(" &middot; ").append(escape(report.get("time"))).append("</div>");

        html.append("<div class=\"cards\">");
        card(html, "busy", pool.get("busy"));
        card(html, "idle", pool.get("idle"));
        card(html, "starting", pool.get("starting"));
        card(html, "queued", pool.get("queued"));
        card(html, "requests", total);
        card(html, "5xx", serverErrors);
        html.append("</div>");

        List<Map<String, Object>> routes = (List<Map<String, Object>>) report.get("routes");
        if (routes.size() > 1) {
            html.append("<h2>Routes</h2><table id=\"routes\"><tr><th>prefix</th><th>ready</th><th>workers</th>")
                    .append("<th>busy</th><th>idle</th><th>starting</th><th>queued</th><th>requests</th></tr>");
            for (Map<String, Object> route : routes) {
                Map<String, Object> routePool = (Map<String, Object>) route.get("pool");
                long answered = ((Map<String, Long>) route.get("requests")).values().stream()
                        .mapToLong(Long::longValue).sum();
                html.append("<tr><td>").append(escape(route.get("prefix"))).append("</td><td class=\"")
                        .append(Boolean.TRUE.equals(route.get("ready")) ? "ok\">ready" : "bad\">not ready")
                        .append("</td><td>").append(route.get("n_min")).append("-").append(route.get("n_max"));
                for (String count : List.of("busy", "idle", "starting", "queued")) {
                    html.append("</td><td class=\"n\">").append(routePool.get(count));
                }
                html.append("</td><td class=\"n\">").append(answered).append("</td></tr>");
            }
            html.append("</table>");
        }

        html.append("<h2>Workers</h2><table id=\"workers\"><tr><th>name</th><th>pid</th><th>state</th>")
                .append("<th>requests</th><th>idle</th><th>memory</th></tr>");
        for (Map<String, Object> worker : (List<Map<String, Object>>) pool.get("upstreams")) {
            boolean busy = Boolean.TRUE.equals(worker.get("busy"));
            long pid = ((Number) worker.get("pid")).longValue();
            long rss = ((Number) worker.get("rss_bytes")).longValue();
            html.append("<tr><td>").append(escape(worker.get("name"))).append("</td><td class=\"n pid\">")
                    .append(pid > 0 ? Long.toString(pid) : "-").append("</td><td class=\"")
                    .append(busy ? "busy\">busy" : "idle\">idle").append("</td><td class=\"n\">")
                    .append(worker.get("requests")).append("</td><td class=\"n\">")
                    .append(busy ? "-" : String.format(Locale.ROOT, "%.1f s", ((Number) worker.get("idle_seconds"))
                            .doubleValue()))
                    .append("</td><td class=\"n\">")
                    .append(rss < 0 ? "-" : String.format(Locale.ROOT, "%.0f MiB", rss / 1048576.0))
                    .append("</td></tr>");
        }
        html.append("</table>");

        html.append("<h2>Requests by status</h2>");
        counts(html, "requests", "status", requests);
        html.append("<h2>valve's own error answers</h2>");
        counts(html, "errors", "status and reason", (Map<String, Long>) report.get("errors"));
        html.append("<h2>Workers stopped</h2>");
        counts(html, "exits", "reason", (Map<String, Long>) pool.get("exits"));

        html.append("<h2>Recent requests</h2><table id=\"recent\"><tr><th>time</th><th>request</th><th>status</th>")
                .append("<th>ms</th><th>queued ms</th><th>worker</th><th>request id</th></tr>");
        for (Map<String, Object> request : (List<Map<String, Object>>) report.get("recent")) {
            int status = (Integer) request.get("status");
            html.append("<tr><td>").append(escape(request.get("time"))).append("</td><td>")
                    .append(escape(request.get("method") + " " + request.get("target"))).append("</td><td class=\"n")
                    .append(status >= 500 ? " bad" : "").append("\">").append(status).append("</td><td class=\"n\">")
                    .append(String.format(Locale.ROOT, "%.1f", (Double) request.get("duration_ms")))
                    .append("</td><td class=\"n\">")
                    .append(request.get("queue_wait_ms") == null ? "-"
                            : String.format(Locale.ROOT, "%.1f", (Double) request.get("queue_wait_ms")))
                    .append("</td><td>").append(escape(request.get("worker") == null ? "-" : request.get("worker")))
                    .append("</td><td>").append(escape(request.get("request_id"))).append("</td></tr>");
        }
        html.append("</table></body></html>\n");
        return html.toString();
    }

    private static void card(StringBuilder html, String label, Object value) {
        html.append("<div class=\"card\"><b>").append(escape(value)).append("</b>").append(label).append("</div>");
    }

    private static void counts(StringBuilder html, String id, String what, Map<String, Long> counts) {
        if (counts.isEmpty()) {
            html.append("<p id=\"").append(id).append("\">none yet</p>");
            return;
        }
        html.append("<table id=\"").append(id).append("\"><tr><th>").append(what).append("</th><th>count</th></tr>");
        counts.forEach((key, count) -> html.append("<tr><td>").append(escape(key)).append("</td><td class=\"n\">")
                .append(count).append("</td></tr>"));
        html.append("</table>");
    }

    static String escape(Object value) {
        String text = String.valueOf(value);
        StringBuilder out = new StringBuilder(text.length());
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            switch (c) {
                case '<' -> out.append("&lt;");
                case '>' -> out.append("&gt;");
                case '&' -> out.append("&amp;");
                case '"' -> out.append("&quot;");
                case '\'' -> out.append("&#39;");
                default -> out.append(c);
            }
        }
        return out.toString();
    }
}
