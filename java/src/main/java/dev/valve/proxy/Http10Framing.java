package dev.valve.proxy;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Locale;

/**
 * Lets Helidon's HTTP/1.1 parser serve HTTP/1.0 clients (nginx's default upstream protocol, ab,
 * health checkers, {@code curl -0}), which Helidon 4.5 answers 505 (helidon-io/helidon#9604).
 *
 * <p>It sits between the socket and the parser and sees each request head of a connection whose
 * first request is HTTP/1.0: the version becomes 1.1, a missing {@code Host} (optional in 1.0)
 * is supplied, and unless the client asked for keep-alive {@code Connection: close} is added, so
 * the request means what it meant in 1.0. Bodies are passed through by their
 * {@code Content-Length}, which is how 1.0 frames them, so pipelined requests stay aligned. Any
 * head it cannot follow (an HTTP/1.1 request, {@code Transfer-Encoding}, a malformed length)
 * ends the rewriting for the rest of the connection, after a {@code Connection: close} where
 * one can still be added: Helidon's own checks then answer it as they would have.
 *
 * <p>Connections that start with anything but HTTP/1.0 are passed through untouched at no cost.
 */
final class Http10Framing {
    /** Longer lines are not ours to judge: Helidon answers 414 or 431 for them. */
    private static final int MAX_LINE = 64 * 1024;
    private static final byte[] HTTP_1_1 = "HTTP/1.1".getBytes(StandardCharsets.US_ASCII);

    private enum State { REQUEST_LINE, HEADERS, BODY, PASS }

    private final String localAuthority;
    private final ByteArrayOutputStream line = new ByteArrayOutputStream(256);
    private State state = State.REQUEST_LINE;
    private boolean decided;
    private boolean legacy;
    private long bodyLeft;
    private boolean hasHost;
    private boolean keepAlive;
    private boolean unframed;
    private long contentLength;

    /** @param localAuthority {@code host:port} the client connected to, the Host of a 1.0 request without one */
    Http10Framing(String localAuthority) {
        this.localAuthority = localAuthority;
    }

    /** Whether this connection's first request was HTTP/1.0. */
    boolean legacy() {
        return legacy;
    }

    /** The bytes to hand the parser for {@code raw} bytes from the socket; may be empty. */
    byte[] apply(byte[] raw) {
        if (state == State.PASS) {
            return raw;
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream(raw.length + 64);
        int i = 0;
        while (i < raw.length) {
            switch (state) {
                case PASS -> {
                    out.write(raw, i, raw.length - i);
                    i = raw.length;
                }
                case BODY -> {
                    int count = (int) Math.min(bodyLeft, raw.length - i);
                    out.write(raw, i, count);
                    i += count;
                    bodyLeft -= count;
                    if (bodyLeft == 0) {
                        state = State.REQUEST_LINE;
                    }
                }
                default -> i = takeLine(raw, i, out);
            }
        }
        return out.toByteArray();
    }

    /** Adds bytes to the current head line; handles the line once its LF arrives. */
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
            if (state == State.REQUEST_LINE) {
                requestLine(bytes, out);
            } else {
                headerLine(bytes, out);
            }
        } else if (line.size() > MAX_LINE) {
            pass(line.toByteArray(), out);
            line.reset();
        }
        return end;
    }

    private void requestLine(byte[] bytes, ByteArrayOutputStream out) {
        String text = text(bytes);
        if (text.isEmpty() && decided) {
            // RFC 9112 2.2: an empty line before a request line is ignored; keep it for the parser.
            out.writeBytes(bytes);
            return;
        }
        boolean http10 = text.endsWith(" HTTP/1.0");
        if (!decided) {
            decided = true;
            legacy = http10;
        }
        if (!http10) {
            pass(bytes, out);
            return;
        }
        out.write(bytes, 0, text.length() - HTTP_1_1.length);
        out.writeBytes(HTTP_1_1);
        out.write(bytes, text.length(), bytes.length - text.length());
        hasHost = false;
        keepAlive = false;
        unframed = false;
        contentLength = 0;
        state = State.HEADERS;
    }

    private void headerLine(byte[] bytes, ByteArrayOutputStream out) {
        String text = text(bytes);
        if (text.isEmpty()) {
            if (!hasHost) {
                out.writeBytes(("Host: " + localAuthority + "\r\n").getBytes(StandardCharsets.US_ASCII));
            }
            if (!keepAlive || unframed) {
                out.writeBytes("Connection: close\r\n".getBytes(StandardCharsets.US_ASCII));
            }
            out.writeBytes(bytes);
            if (unframed) {
                state = State.PASS;
            } else if (contentLength > 0) {
                bodyLeft = contentLength;
                state = State.BODY;
            } else {
                state = State.REQUEST_LINE;
            }
            return;
        }
        out.writeBytes(bytes);
        int colon = text.indexOf(':');
        if (colon <= 0) {
            // Malformed: Helidon refuses it with 400 and the connection ends anyway.
            return;
        }
        String name = text.substring(0, colon).trim().toLowerCase(Locale.ROOT);
        String value = text.substring(colon + 1).trim();
        switch (name) {
            case "host" -> hasHost = true;
            case "connection" -> keepAlive |= hasToken(value, "keep-alive");
            case "transfer-encoding" -> unframed = true;
            case "content-length" -> {
                try {
                    long length = Long.parseLong(value);
                    if (length < 0 || (contentLength > 0 && length != contentLength)) {
                        unframed = true;
                    }
                    contentLength = length;
                } catch (NumberFormatException e) {
                    unframed = true;
                }
            }
            default -> {
                // Every other header passes as it is.
            }
        }
    }

    private void pass(byte[] bytes, ByteArrayOutputStream out) {
        out.writeBytes(bytes);
        state = State.PASS;
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
