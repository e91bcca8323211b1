package dev.valve.proxy;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

import org.junit.jupiter.api.Test;

/**
 * The rewriter sees a connection's bytes in whatever pieces the socket delivers: the result must
 * be the same however the stream is cut.
 */
class RequestRewriterTest {
    private static final String AUTHORITY = "127.0.0.1:3000";

    @Test
    void http10HeadsAreRewrittenAndHttp11PassesUnchanged() {
        String in = "GET /a HTTP/1.0\r\n\r\n"
                + "POST /b HTTP/1.0\r\nConnection: keep-alive\r\nHost: h\r\nContent-Length: 5\r\n\r\nHTTP/"
                + "GET /c HTTP/1.1\r\nHost: h\r\n\r\n";
        String expected = "GET /a HTTP/1.1\r\nX-Valve-Http10: 1\r\nHost: " + AUTHORITY + "\r\nConnection: close\r\n\r\n"
                + "POST /b HTTP/1.1\r\nConnection: keep-alive\r\nHost: h\r\nContent-Length: 5\r\nX-Valve-Http10: 1\r\n\r\nHTTP/"
                + "GET /c HTTP/1.1\r\nHost: h\r\n\r\n";
        assertSameForEveryCut(in, expected);
    }

    @Test
    void chunkedBodiesLoseExtensionsAndTrailersAndTheNextRequestIsStillFound() {
        String in = "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "5;a=b\r\nHTTP/\r\n3\r\n1.0\r\n0\r\nX-T: 1\r\n\r\n"
                + "GET /y HTTP/1.0\r\nHost: h\r\n\r\n";
        String expected = "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "5\r\nHTTP/\r\n3\r\n1.0\r\n0\r\n\r\n"
                + "GET /y HTTP/1.1\r\nHost: h\r\nX-Valve-Http10: 1\r\nConnection: close\r\n\r\n";
        assertSameForEveryCut(in, expected);
    }

    @Test
    void aForgedMarkerIsDroppedAndWhatCannotBeFollowedPassesUntouched() {
        String in = "GET /m HTTP/1.1\r\nX-Valve-Http10: 1\r\nHost: h\r\n\r\n"
                + "POST /z HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /w HTTP/1.0\r\n\r\n";
        String expected = "GET /m HTTP/1.1\r\nHost: h\r\n\r\n"
                + "POST /z HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX-Valve-Http10: 1\r\nHost: " + AUTHORITY
                + "\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /w HTTP/1.0\r\n\r\n";
        assertSameForEveryCut(in, expected);
    }

    /** Feeds the stream whole, and cut in two at every position, and in single bytes. */
    private static void assertSameForEveryCut(String input, String expected) {
        byte[] bytes = input.getBytes(StandardCharsets.ISO_8859_1);
        assertEquals(expected, run(bytes, bytes.length), "whole");
        assertEquals(expected, run(bytes, 1), "byte by byte");
        for (int cut = 1; cut < bytes.length; cut++) {
            RequestRewriter rewriter = new RequestRewriter(AUTHORITY);
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            out.writeBytes(rewriter.apply(java.util.Arrays.copyOfRange(bytes, 0, cut)));
            out.writeBytes(rewriter.apply(java.util.Arrays.copyOfRange(bytes, cut, bytes.length)));
            assertEquals(expected, out.toString(StandardCharsets.ISO_8859_1), "cut at " + cut);
        }
    }

    private static String run(byte[] bytes, int piece) {
        RequestRewriter rewriter = new RequestRewriter(AUTHORITY);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int i = 0; i < bytes.length; i += piece) {
            out.writeBytes(rewriter.apply(java.util.Arrays.copyOfRange(bytes, i, Math.min(bytes.length, i + piece))));
        }
        return out.toString(StandardCharsets.ISO_8859_1);
    }
}
