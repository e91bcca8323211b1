package dev.valve.proxy;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.Closeable;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

import jdk.net.ExtendedSocketOptions;

/**
 * An HTTP/1.1 connection to one upstream, for one request at a time and, when it may be kept
 * alive, for the next ones too.
 *
 * <p>Written here rather than taken from Helidon's WebClient because a reverse proxy must send
 * the request target byte for byte: WebClient 4.5 decodes {@code %2F} to {@code /} (which changes
 * routing), regroups and reorders query parameters and rewrites {@code +}.
 *
 * <p>Keeping the connection is what lets a worker skip a TCP handshake and connection set-up
 * per request, but plumber (httpuv) writes head and body in two writes without
 * {@code TCP_NODELAY}: on a reused connection Nagle plus this side's delayed ACK would stall
 * every response by about 40 ms. Re-arming {@code TCP_QUICKACK} before every read acknowledges
 * at once, which removes the stall; the kernel clears the mode by itself, hence every read.
 * Where the option does not exist (not Linux) connections are not kept.
 */
final class UpstreamConnection implements Closeable {
    private static final int MAX_HEAD_BYTES = 64 * 1024;

    /** Whether connections can be kept without the delayed-ACK stall on this platform. */
    static final boolean KEEP_ALIVE = quickAckSupported();

    /**
     * A response head. {@link #body()} yields exactly the body bytes, decoded from chunking, and
     * is null when the response has no body (HEAD, 204, 304).
     */
    record Response(int status, String reason, List<String[]> headers, InputStream body, long contentLength) {
    }

    /** The upstream answered something that is not HTTP/1.1: a protocol error, not a broken connection. */
    static final class BadResponseException extends IOException {
        private static final long serialVersionUID = 1L;

        BadResponseException(String message) {
            super(message);
        }
    }

    private final Socket socket;
    private final InputStream in;
    private final OutputStream out;
    private final boolean keepAlive;
    /** Requests sent on this connection so far. */
    private int requests;
    /** The current response's first byte arrived. */
    private boolean answered;
    /** The current response allows the connection to be used again once its body is read. */
    private boolean reusable;
    /** The current response's body has been read to its end (or it has none). */
    private boolean bodyDone;

    private UpstreamConnection(Socket socket, boolean keepAlive) throws IOException {
        this.socket = socket;
        this.keepAlive = keepAlive;
        InputStream raw = socket.getInputStream();
        // Small buffers: most exchanges are a short head each way; bodies are copied in 64 KiB
        // blocks that pass these buffers by.
        this.in = new BufferedInputStream(keepAlive ? new QuickAckInputStream(raw) : raw, 8 * 1024);
        this.out = new BufferedOutputStream(socket.getOutputStream(), 8 * 1024);
    }

    /**
     * @param readTimeout how long the upstream may stay silent; past it reads throw
     *                    {@link java.net.SocketTimeoutException}
     * @param keepAlive   ask to keep the connection for later requests (needs {@link #KEEP_ALIVE})
     */
    static UpstreamConnection open(String host, int port, Duration connectTimeout, Duration readTimeout,
                                   boolean keepAlive) throws IOException {
        Socket socket = new Socket();
        try {
            socket.setTcpNoDelay(true);
            socket.connect(new InetSocketAddress(host, port), (int) connectTimeout.toMillis());
            socket.setSoTimeout((int) Math.min(Integer.MAX_VALUE, readTimeout.toMillis()));
            return new UpstreamConnection(socket, keepAlive && KEEP_ALIVE);
        } catch (IOException | RuntimeException e) {
            socket.close();
            throw e;
        }
    }

    /** Whether a request was already sent on this connection before the current one. */
    boolean reused() {
        return requests > 1;
    }

    /** Whether any of the current response arrived: if not, the upstream never answered it. */
    boolean answered() {
        return answered;
    }

    /** Whether the next request may use this connection: the last response ended cleanly and kept it open. */
    boolean reusable() {
        return reusable && bodyDone && !socket.isClosed();
    }

    /**
     * Sends the request. {@code headers} are name/value pairs already cleaned of hop-by-hop and
     * framing headers; this adds the body's {@code Content-Length}, and {@code Connection: close}
     * unless the connection is kept.
     */
    void send(String method, String target, List<String[]> headers, Spool body) throws IOException {
        requests++;
        answered = false;
        reusable = false;
        bodyDone = false;
        StringBuilder head = new StringBuilder(256 + headers.size() * 32);
        head.append(method).append(' ').append(target).append(" HTTP/1.1\r\n");
        for (String[] header : headers) {
            head.append(header[0]).append(": ").append(header[1]).append("\r\n");
        }
        if (body != null) {
            head.append("Content-Length: ").append(body.size()).append("\r\n");
        }
        head.append(keepAlive ? "\r\n" : "Connection: close\r\n\r\n");
        out.write(head.toString().getBytes(StandardCharsets.ISO_8859_1));
        if (body != null) {
            body.writeTo(out);
        }
        out.flush();
    }

    /** Reads the response head, skipping interim 1xx answers. */
    Response receive(boolean headRequest) throws IOException {
        while (true) {
            String statusLine = readLine();
            String[] parts = statusLine.split(" ", 3);
            if (parts.length < 2 || !parts[0].startsWith("HTTP/1.")) {
                throw new BadResponseException("not an HTTP/1.x status line: " + abbreviate(statusLine));
            }
            int status = parseStatus(parts[1]);
            List<String[]> headers = readHeaders();
            if (status == 101) {
                // Switching protocols: what follows is the new protocol's, see upgraded().
                reusable = false;
                bodyDone = true;
                return new Response(status, parts.length > 2 ? parts[2] : "", headers, null, -1);
            }
            if (status >= 100 && status < 200) {
                continue;
            }
            String reason = parts.length > 2 ? parts[2] : "";
            reusable = keepAlive && parts[0].equals("HTTP/1.1") && !saysClose(headers);
            InputStream body = body(headRequest, status, headers);
            long length = body instanceof FixedLengthInputStream fixed ? fixed.remaining : -1;
            return new Response(status, reason, headers, body, length);
        }
    }

    private InputStream body(boolean headRequest, int status, List<String[]> headers) throws IOException {
        if (headRequest || status == 204 || status == 304) {
            bodyDone = true;
            return null;
        }
        String transferEncoding = null;
        String contentLength = null;
        for (String[] header : headers) {
            if (header[0].equalsIgnoreCase("transfer-encoding")) {
                transferEncoding = header[1];
            } else if (header[0].equalsIgnoreCase("content-length")) {
                contentLength = header[1];
            }
        }
        if (transferEncoding != null) {
            if (!transferEncoding.toLowerCase(Locale.ROOT).trim().endsWith("chunked")) {
                // Delimited by the connection's end: nothing can follow it.
                reusable = false;
                return in;
            }
            return new ChunkedInputStream();
        }
        if (contentLength != null) {
            try {
                long length = Long.parseLong(contentLength.trim());
                if (length < 0) {
                    throw new NumberFormatException();
                }
                return new FixedLengthInputStream(length);
            } catch (NumberFormatException e) {
                throw new BadResponseException("invalid Content-Length from upstream: " + abbreviate(contentLength));
            }
        }
        reusable = false;
        return in;
    }

    private static boolean saysClose(List<String[]> headers) {
        for (String[] header : headers) {
            if (header[0].equalsIgnoreCase("connection")) {
                for (String token : header[1].split(",")) {
                    if (token.trim().equalsIgnoreCase("close")) {
                        return true;
                    }
                }
            }
        }
        return false;
    }

    private List<String[]> readHeaders() throws IOException {
        List<String[]> headers = new ArrayList<>();
        int total = 0;
        String line;
        while (!(line = readLine()).isEmpty()) {
            total += line.length();
            if (total > MAX_HEAD_BYTES) {
                throw new BadResponseException("upstream response headers exceed " + MAX_HEAD_BYTES + " bytes");
            }
            int colon = line.indexOf(':');
            if (colon <= 0 || !isToken(line, colon) || !isFieldValue(line, colon + 1)) {
                throw new BadResponseException("malformed upstream header: " + abbreviate(line));
            }
            headers.add(new String[] {line.substring(0, colon), line.substring(colon + 1).trim()});
        }
        return headers;
    }

    private String readLine() throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream(128);
        int b;
        while ((b = in.read()) != '\n') {
            if (b < 0) {
                throw new EOFException("upstream closed the connection");
            }
            answered = true;
            if (line.size() >= MAX_HEAD_BYTES) {
                throw new BadResponseException("upstream line exceeds " + MAX_HEAD_BYTES + " bytes");
            }
            line.write(b);
        }
        answered = true;
        int length = line.size();
        byte[] bytes = line.toByteArray();
        return new String(bytes, 0, length > 0 && bytes[length - 1] == '\r' ? length - 1 : length,
                StandardCharsets.ISO_8859_1);
    }

    private static int parseStatus(String text) throws IOException {
        try {
            int status = Integer.parseInt(text);
            if (status < 100 || status > 999) {
                throw new NumberFormatException();
            }
            return status;
        } catch (NumberFormatException e) {
            throw new BadResponseException("invalid upstream status: " + abbreviate(text));
        }
    }

    /** RFC 9110 5.1: a field name is a token; anything else would be refused by the client side. */
    private static boolean isToken(String line, int end) {
        for (int i = 0; i < end; i++) {
            char c = line.charAt(i);
            boolean token = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                    || "!#$%&'*+-.^_`|~".indexOf(c) >= 0;
            if (!token) {
                return false;
            }
        }
        return true;
    }

    /** RFC 9110 5.5: no control characters but horizontal tab in a field value. */
    private static boolean isFieldValue(String line, int start) {
        for (int i = start; i < line.length(); i++) {
            char c = line.charAt(i);
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                return false;
            }
        }
        return true;
    }

    private static boolean quickAckSupported() {
        try (Socket probe = new Socket()) {
            return probe.supportedOptions().contains(ExtendedSocketOptions.TCP_QUICKACK);
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    /** Re-arms {@code TCP_QUICKACK} before each read from the socket (see the class comment). */
    private final class QuickAckInputStream extends BlockInputStream {
        private final InputStream raw;

        QuickAckInputStream(InputStream raw) {
            this.raw = raw;
        }

        @Override
        public int read(byte[] buffer, int offset, int length) throws IOException {
            socket.setOption(ExtendedSocketOptions.TCP_QUICKACK, true);
            return raw.read(buffer, offset, length);
        }
    }

    private static String abbreviate(String text) {
        return text.length() <= 80 ? text : text.substring(0, 80) + "...";
    }

    /**
     * The connection after a {@code 101}: its bytes both ways, without the read timeout (a
     * WebSocket may be silent for as long as its ends like). Bytes the worker sent right after
     * its head are in {@code in}'s buffer, so nothing is lost.
     */
    WebSocketTunnel.End upgraded() throws IOException {
        socket.setSoTimeout(0);
        return new WebSocketTunnel.End(in, out, () -> KeptConnections.closeQuietly(this));
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }

    /** Exactly {@code remaining} bytes; fewer before end-of-stream is an error, not a short body. */
    private final class FixedLengthInputStream extends BlockInputStream {
        private long remaining;

        FixedLengthInputStream(long length) {
            this.remaining = length;
            bodyDone = length == 0;
        }

        @Override
        public int read(byte[] buffer, int offset, int length) throws IOException {
            if (remaining == 0) {
                return -1;
            }
            int count = in.read(buffer, offset, (int) Math.min(length, remaining));
            if (count < 0) {
                throw new EOFException("upstream body ended " + remaining + " bytes early");
            }
            remaining -= count;
            bodyDone = remaining == 0;
            return count;
        }
    }

    /** Decodes chunked transfer coding; trailers are read and dropped. */
    private final class ChunkedInputStream extends BlockInputStream {
        private long chunkLeft;
        private boolean done;

        @Override
        public int read(byte[] buffer, int offset, int length) throws IOException {
            if (done) {
                return -1;
            }
            if (chunkLeft == 0) {
                String sizeLine = readLine();
                int semicolon = sizeLine.indexOf(';');
                String size = (semicolon >= 0 ? sizeLine.substring(0, semicolon) : sizeLine).trim();
                try {
                    chunkLeft = Long.parseUnsignedLong(size, 16);
                } catch (NumberFormatException e) {
                    throw new BadResponseException("invalid chunk size from upstream: " + abbreviate(sizeLine));
                }
                if (chunkLeft == 0) {
                    readHeaders();
                    done = true;
                    bodyDone = true;
                    return -1;
                }
            }
            int count = in.read(buffer, offset, (int) Math.min(length, chunkLeft));
            if (count < 0) {
                throw new EOFException("upstream chunked body ended early");
            }
            chunkLeft -= count;
            if (chunkLeft == 0 && !readLine().isEmpty()) {
                throw new BadResponseException("chunk not followed by CRLF");
            }
            return count;
        }
    }
}
