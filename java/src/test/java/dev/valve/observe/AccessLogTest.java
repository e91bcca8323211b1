package dev.valve.observe;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class AccessLogTest {
    @Test
    void whatTheClientChoseCannotForgeAFieldOrALine() {
        Exchange exchange = new Exchange("10.0.0.1", "GET", "/a\"b", "HTTP/1.1", null,
                "evil\"\n127.0.0.1 - - [x] \"GET / HTTP/1.1\" 200 \\ \u00e9", "id-1");
        exchange.status = 200;
        exchange.durationNanos = 1_234_567;
        String line = new AccessLog().line(exchange);
        assertFalse(line.contains("\n"));
        assertTrue(line.startsWith("10.0.0.1 - - ["), line);
        assertTrue(line.contains("\"GET /a\\\"b HTTP/1.1\" 200 - \"-\" "
                + "\"evil\\\"\\x0a127.0.0.1 - - [x] \\\"GET / HTTP/1.1\\\" 200 \\\\ \\xe9\" 1.234 - \"-\" id-1"), line);
    }

    @Test
    void millisecondsKeepThreeDecimals() {
        assertEquals("0.000", AccessLog.milliseconds(new StringBuilder(), 0).toString());
        assertEquals("0.007", AccessLog.milliseconds(new StringBuilder(), 7_000).toString());
        assertEquals("12.050", AccessLog.milliseconds(new StringBuilder(), 12_050_999).toString());
    }

    @Test
    void onlySaneRequestIdsAreKept() {
        assertTrue(RequestIds.sane("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assertTrue(RequestIds.sane("a/b+c=d:e@f~g_h.i"));
        assertTrue(RequestIds.sane("x".repeat(RequestIds.MAX_LENGTH)));
        assertFalse(RequestIds.sane(""));
        assertFalse(RequestIds.sane("x".repeat(RequestIds.MAX_LENGTH + 1)));
        assertFalse(RequestIds.sane("two words"));
        assertFalse(RequestIds.sane("quote\""));
        assertFalse(RequestIds.sane("line\nbreak"));
        assertTrue(RequestIds.generate().matches("[0-9a-f]{32}"));
    }
}
