package dev.valve.proxy;

import java.nio.charset.StandardCharsets;

import dev.valve.log.LogSink;

import io.helidon.http.DirectHandler;
import io.helidon.http.Header;
import io.helidon.http.HeaderNames;
import io.helidon.http.HeaderValues;
import io.helidon.http.ServerResponseHeaders;
import io.helidon.http.Status;
import io.helidon.webserver.http.ServerRequest;
import io.helidon.webserver.http.ServerResponse;

/**
 * Every answer valve gives itself rather than passing on a worker's: a {@code text/plain} body
 * starting {@code valve: }, a {@code Retry-After} on 503s, and one log line each, whether the
 * proxy refused the request or Helidon's parser did (as a {@link DirectHandler}).
 */
public final class ErrorAnswers implements DirectHandler {
    private static final Header RETRY_AFTER = HeaderValues.create(HeaderNames.RETRY_AFTER, "1");

    private final LogSink log;

    public ErrorAnswers(LogSink log) {
        this.log = log;
    }

    /** Answers a routed request, unless an answer has already started; returns the body's size (0 if not sent). */
    int send(ServerRequest req, ServerResponse res, Status status, String message) {
        if (res.isSent()) {
            return 0;
        }
        record(status, req.prologue().method().text(), req.prologue().uriPath().rawPath(), message);
        res.status(status);
        prepare(res.headers(), status);
        byte[] body = body(message);
        res.send(body);
        return body.length;
    }

    /** Answers what Helidon refused before routing: malformed requests, oversized heads. */
    @Override
    public TransportResponse handle(TransportRequest request, EventType eventType, Status status,
                                    ServerResponseHeaders headers, String message) {
        String text = message == null || message.isEmpty() ? status.reasonPhrase() : message;
        record(status, request.method(), request.path(), text);
        prepare(headers, status);
        return TransportResponse.builder()
                .status(status)
                .headers(headers)
                .entity(body(text))
                .keepAlive(eventType.keepAlive())
                .build();
    }

    private void record(Status status, String method, String path, String message) {
        String target = method == null || method.isEmpty() ? "" : " to " + method + " " + abbreviate(path);
        log.add("valve", "answered " + status.code() + target + ": " + message);
    }

    private static void prepare(ServerResponseHeaders headers, Status status) {
        headers.set(HeaderValues.CONTENT_TYPE_TEXT_PLAIN);
        if (status.code() == Status.SERVICE_UNAVAILABLE_503.code()) {
            headers.set(RETRY_AFTER);
        }
    }

    private static byte[] body(String message) {
        return ("valve: " + message + "\n").getBytes(StandardCharsets.UTF_8);
    }

    private static String abbreviate(String path) {
        return path == null ? "" : path.length() <= 200 ? path : path.substring(0, 200) + "...";
    }
}
