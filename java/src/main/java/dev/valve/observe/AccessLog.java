package dev.valve.observe;

import java.time.Instant;
import java.time.ZoneId;
import java.time.format.DateTimeFormatter;
import java.util.Locale;

/**
 * The access log line: the Combined Log Format (Apache's and nginx's default, which log tools
 * parse) followed by valve's own fields: the time in valve (ms), the time waited in the queue (ms,
 * {@code -} when no worker was leased), the worker that answered (quoted: names have spaces;
 * {@code "-"} when none) and the request id:
 *
 * <pre>
 * 127.0.0.1 - - [02/Dec/2026:07:36:53 +0000] "GET /pid HTTP/1.1" 200 14 "-" "curl/7.88.1" 1.234 0.012 "worker 1" 5f0c...
 * </pre>
 *
 * Everything the client chose (target, Referer, User-Agent) is escaped as nginx does ({@code \"},
 * {@code \\}, {@code \xHH} for control and non-ASCII bytes), so a client cannot forge a line or a
 * field.
 */
final class AccessLog {
    private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("dd/MMM/yyyy:HH:mm:ss Z", Locale.ROOT)
            .withZone(ZoneId.systemDefault());

    /** The last second formatted: under load nearly every line falls in the same second as the one before. */
    private record Second(long epochSecond, String text) {
    }

    private volatile Second lastSecond = new Second(Long.MIN_VALUE, "");

    String line(Exchange exchange) {
        StringBuilder line = new StringBuilder(160);
        line.append(exchange.client).append(" - - [").append(time(exchange.startMillis)).append("] \"");
        escape(line, exchange.method).append(' ');
        escape(line, exchange.target).append(' ');
        escape(line, exchange.protocol).append("\" ").append(exchange.status).append(' ');
        if (exchange.bodyBytes > 0) {
            line.append(exchange.bodyBytes);
        } else {
            line.append('-');
        }
        line.append(" \"");
        escapeOrDash(line, exchange.referer).append("\" \"");
        escapeOrDash(line, exchange.userAgent).append("\" ");
        milliseconds(line, exchange.durationNanos).append(' ');
        if (exchange.queueWaitNanos == Exchange.NONE) {
            line.append('-');
        } else {
            milliseconds(line, exchange.queueWaitNanos);
        }
        line.append(" \"");
        escapeOrDash(line, exchange.worker).append("\" ").append(exchange.requestId);
        return line.toString();
    }

    private String time(long epochMillis) {
        long epochSecond = Math.floorDiv(epochMillis, 1000);
        Second second = lastSecond;
        if (second.epochSecond() != epochSecond) {
            second = new Second(epochSecond, TIME.format(Instant.ofEpochSecond(epochSecond)));
            lastSecond = second;
        }
        return second.text();
    }

    /** Milliseconds with three decimals, without the cost of a format string. */
    static StringBuilder milliseconds(StringBuilder out, long nanos) {
        long micros = Math.max(0, nanos) / 1000;
        long fraction = micros % 1000;
        out.append(micros / 1000).append('.');
        if (fraction < 100) {
            out.append('0');
        }
        if (fraction < 10) {
            out.append('0');
        }
        return out.append(fraction);
    }

    private static StringBuilder escapeOrDash(StringBuilder out, String value) {
        return value == null || value.isEmpty() ? out.append('-') : escape(out, value);
    }

    static StringBuilder escape(StringBuilder out, String value) {
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20 || c >= 0x7f && c <= 0xff) {
                // Helidon reads header bytes as ISO-8859-1, one char per byte.
                out.append("\\x").append(Character.forDigit(c >> 4, 16)).append(Character.forDigit(c & 0xf, 16));
            } else if (c > 0xff) {
                out.append("\\u").append(String.format(Locale.ROOT, "%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out;
    }
}
