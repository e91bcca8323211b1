package dev.valve.testing;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;


/**
 * A deliberately dumb HTTP/1.1 client on a raw socket: tests decide every byte sent (including
 * hop-by-hop and malformed headers, which java.net.http refuses to send) and see every byte back.
 */
public final class RawHttp implements AutoCloseable {
    public record Response(int status, Map<String, List<String>> headers, byte[] body) {
        public String text() {
            return new String(body, StandardCharsets.UTF_8);
        }

        public String header(String name) {
            List<String> values = headers.get(name.toLowerCase(java.util.Locale.ROOT));
            return values == null ? null : String.join(", ", values);
        }
    }

    private final Socket socket;
    public final InputStream in;
    public final OutputStream out;

    public RawHttp(int port) throws IOException {
        socket = new Socket(InetAddress.getLoopbackAddress(), port);
        socket.setSoTimeout(30_000);
        in = new BufferedInputStream(socket.getInputStream());
        out = socket.getOutputStream();
    }

    public void send(String head) throws IOException {
        out.write(head.getBytes(StandardCharsets.ISO_8859_1));
        out.flush();
    }

    /** Reads one response; {@code bodyless} for answers to HEAD. */
    public Response read(boolean bodyless) throws IOException {
        String statusLine = StubWorker.readLine(in);
        if (statusLine == null) {
            throw new IOException("connection closed before a response");
        }
        int status = Integer.parseInt(statusLine.split(" ")[1]);
        Map<String, List<String>> headers = StubWorker.readHeaders(in);
        if (bodyless || status == 204 || status == 304) {
            return new Response(status, headers, new byte[0]);
        }
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        if (headers.containsKey("transfer-encoding")) {
            String size;
            while ((size = StubWorker.readLine(in)) != null && Integer.parseInt(size.trim(), 16) > 0) {
                body.write(in.readNBytes(Integer.parseInt(size.trim(), 16)));
                StubWorker.readLine(in);
            }
            StubWorker.readHeaders(in);
        } else if (headers.containsKey("content-length")) {
            body.write(in.readNBytes(Integer.parseInt(headers.get("content-length").get(0))));
        } else {
            body.write(in.readAllBytes());
        }
        return new Response(status, headers, body.toByteArray());
    }

    /**
     * Reads what is left until the server closes the connection and returns the byte count. A
     * reset counts as a close, as it is an equally honest way to end a body the server could not
     * complete; any other failure is thrown.
     */
    public long readUntilClosed() throws IOException {
        byte[] buffer = new byte[64 * 1024];
        long total = 0;
        try {
            int count;
            while ((count = in.read(buffer)) >= 0) {
                total += count;
            }
        } catch (SocketException e) {
            if (e.getMessage() == null || !e.getMessage().contains("reset")) {
                throw e;
            }
        }
        return total;
    }

    public static Response exchange(int port, String head) throws IOException {
        try (RawHttp http = new RawHttp(port)) {
            http.send(head);
            return http.read(head.startsWith("HEAD "));
        }
    }

    public static Response get(int port, String target) throws IOException {
        return exchange(port, "GET " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
