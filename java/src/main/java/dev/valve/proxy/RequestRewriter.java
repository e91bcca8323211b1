package dev.valve.proxy;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Locale;

/**
 * Rewrites what Helidon 4.5's HTTP/1.1 parser refuses but HTTP allows, so that valve serves it:
 * HTTP/1.0 requests (nginx's default upstream protocol, ab, health checkers, {@code curl -0}),
 * which Helidon answers 505 (helidon-io/helidon#9604), and chunk extensions and trailers in
 * chunked request bodies, which it answers 400. Extensions and trailers carry nothing a plumber
 * API could see (the body reaches the worker with a {@code Content-Length}), so they are dropped.
 *
 * <p>It sits between a client's socket and the parser and follows the connection's requests:
 * each head line by line, each body by its framing ({@code Content-Length}, or chunks), so it
 * knows where the next request starts even when requests are pipelined or the client switches
 * versions on a kept connection (curl does). In an HTTP/1.0 head the version becomes 1.1, a
 * missing {@code Host} (optional in 1.0) is supplied, {@code Connection: close} is added unless
 * the client asked for keep-alive, so the request means what it meant in 1.0, and the
 * {@link #MARKER} header tells the proxy to answer in a way a 1.0 client can read. A marker a
 * client sent itself is dropped.
 *
 * <p>What it cannot follow it leaves to the parser: a malformed length or chunk, an HTTP/1.0
 * request with {@code Transfer-Encoding} (faulty framing in 1.0: it gets {@code Connection:
 * close}), an {@code Upgrade}, a line longer than any the parser accepts. From there on the
 * connection's bytes pass untouched, and Helidon's own checks answer as they would have.
 */
final class RequestRewriter {
    /** Added to a request that arrived as HTTP/1.0; never forwarded. */
    static final String MARKER = "X-Valve-Http10";
    private static final String MARKER_LOWER = MARKER.toLowerCase(Locale.ROOT);
    /** Longer lines are not ours to judge: Helidon answers 414, 431 or 400 for them. */
    private static final int MAX_LINE = 64 * 1024;
    private static final byte[] HTTP_1_1 = "HTTP/1.1".getBytes(StandardCharsets.US_ASCII);

    private enum State { REQUEST_LINE, HEADERS, BODY, CHUNK_SIZE, CHUNK_DATA, CHUNK_END, TRAILERS, PASS }

    private final String localAuthority;
    private final ByteArrayOutputStream line = new ByteArrayOutputStream(256);
    private State state = State.REQUEST_LINE;
    private long left;
    private boolean http10;
    private boolean hasHost;
    private boolean keepAlive;
    private boolean chunked;
    private boolean unfollowable;
    private long contentLength;

    /** @param localAuthority {@code host:port} the client connected to, the Host of a 1.0 request without one */
    RequestRewriter(String localAuthority) {
        this.localAuthority = localAuthority;
    }

    /** The bytes to hand the parser for {@code raw} bytes from the socket; may be empty. */
    byte[] apply(byte[] raw) {
        if (state == State.PASS || (isBody() && left > raw.length)) {
            // Untouched bytes need no copy: the whole read is body (or nothing is followed any more).
            left -= state == State.PASS ? 0 : raw.length;
            return raw;
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream(raw.length + 64);
        int i = 0;
        while (i < raw.length) {
            if (state == State.PASS) {
                out.write(raw, i, raw.length - i);
                break;
            }
            if (isBody()) {
                int count = (int) Math.min(left, raw.length - i);
                out.write(raw, i, count);
                i += count;
                left -= count;
                if (left == 0) {
                    state = state == State.BODY ? State.REQUEST_LINE : State.CHUNK_END;
                }
            } else {
                i = takeLine(raw, i, out);
            }
        }
        return out.toByteArray();
    }

    private boolean isBody() {
        return state == State.BODY || state == State.CHUNK_DATA;
    }

    /** Adds bytes to the current line; handles the line once its LF arrives. */
    private int takeLine(byte[] raw, int from, ByteArrayOutputStream out) {
        int lf = from;
        while (lf < raw.length && raw[lf] != '\n') {
            lf++;
        }
        boolean complete = lf < raw.length;
        int end = complete ? lf + 1 : raw.length;
        line.write(raw, from, end - from);
        if (complete) {
            byte[] bytes = line.toByteArray();
            line.reset();
            switch (state) {
                case REQUEST_LINE -> requestLine(bytes, out);
                case HEADERS -> headerLine(bytes, out);
                case CHUNK_SIZE -> chunkSize(bytes, out);
                case CHUNK_END -> {
                    out.writeBytes(bytes);
                    state = text(bytes).isEmpty() ? State.CHUNK_SIZE : State.PASS;
                }
                default -> {
                    // Trailer fields are dropped; the empty line ends the body.
                    if (text(bytes).isEmpty()) {
                        out.writeBytes(bytes);
                        state = State.REQUEST_LINE;
                    }
                }
            }
        } else if (line.size() > MAX_LINE) {
            out.writeBytes(line.toByteArray());
            line.reset();
            state = State.PASS;
        }
        return end;
    }

    private void requestLine(byte[] bytes, ByteArrayOutputStream out) {
        String text = text(bytes);
        if (text.isEmpty()) {
            // RFC 9112 2.2: an empty line before a request line is ignored; keep it for the parser.
            out.writeBytes(bytes);
            return;
        }
        http10 = text.endsWith(" HTTP/1.0");
        hasHost = false;
        keepAlive = false;
        chunked = false;
        unfollowable = false;
        contentLength = 0;
        state = State.HEADERS;
        if (!http10) {
            out.writeBytes(bytes);
            return;
        }
        out.write(bytes, 0, text.length() - HTTP_1_1.length);
        out.writeBytes(HTTP_1_1);
        out.write(bytes, text.length(), bytes.length - text.length());
    }

    private void headerLine(byte[] bytes, ByteArrayOutputStream out) {
        String text = text(bytes);
        if (text.isEmpty()) {
            endOfHead(bytes, out);
            return;
        }
        int colon = text.indexOf(':');
        String name = colon > 0 ? text.substring(0, colon).trim().toLowerCase(Locale.ROOT) : "";
        if (name.equals(MARKER_LOWER)) {
            return;
        }
        out.writeBytes(bytes);
        if (colon <= 0) {
            // Malformed: Helidon refuses it with 400 and the connection ends.
            unfollowable = true;
            return;
        }
        String value = text.substring(colon + 1).trim();
        switch (name) {
            case "host" -> hasHost = true;
            case "connection" -> keepAlive |= hasToken(value, "keep-alive");
            case "upgrade" -> unfollowable = true;
            case "transfer-encoding" -> {
                chunked = value.toLowerCase(Locale.ROOT).endsWith("chunked");
                unfollowable |= http10 || !chunked;
            }
            case "content-length" -> {
                try {
                    long length = Long.parseLong(value);
                    unfollowable |= length < 0 || (contentLength > 0 && length != contentLength);
                    contentLength = length;
                } catch (NumberFormatException e) {
                    unfollowable = true;
                }
            }
            default -> {
                // Every other header passes as it is.
            }
        }
    }

    private void endOfHead(byte[] emptyLine, ByteArrayOutputStream out) {
        if (http10) {
            out.writeBytes((MARKER + ": 1\r\n").getBytes(StandardCharsets.US_ASCII));
            if (!hasHost) {
                out.writeBytes(("Host: " + localAuthority + "\r\n").getBytes(StandardCharsets.US_ASCII));
            }
            if (!keepAlive || unfollowable) {
                out.writeBytes("Connection: close\r\n".getBytes(StandardCharsets.US_ASCII));
            }
        }
        out.writeBytes(emptyLine);
        if (unfollowable) {
            state = State.PASS;
        } else if (chunked) {
            state = State.CHUNK_SIZE;
        } else if (contentLength > 0) {
            left = contentLength;
            state = State.BODY;
        } else {
            state = State.REQUEST_LINE;
        }
    }

    private void chunkSize(byte[] bytes, ByteArrayOutputStream out) {
        String line = text(bytes);
        int extension = line.indexOf(';');
        String size = (extension >= 0 ? line.substring(0, extension) : line).trim();
        try {
            left = Long.parseLong(size, 16);
        } catch (NumberFormatException e) {
            out.writeBytes(bytes);
            state = State.PASS;
            return;
        }
        out.writeBytes((size + "\r\n").getBytes(StandardCharsets.US_ASCII));
        state = left == 0 ? State.TRAILERS : left > 0 ? State.CHUNK_DATA : State.PASS;
    }

    private static boolean hasToken(String value, String token) {
        for (String part : value.split(",")) {
            if (part.trim().equalsIgnoreCase(token)) {
                return true;
            }
        }
        return false;
    }

    /** The line without its line ending. */
    private static String text(byte[] bytes) {
        int length = bytes.length;
        if (length > 0 && bytes[length - 1] == '\n') {
            length--;
        }
        if (length > 0 && bytes[length - 1] == '\r') {
            length--;
        }
        return new String(bytes, 0, length, StandardCharsets.ISO_8859_1);
    }
}
