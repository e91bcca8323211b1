package dev.valve.proxy;

import java.util.Locale;

import dev.valve.pool.PoolException;

import io.helidon.http.Status;

/**
 * Every way a forwarded request can fail after it was read, and the HTTP answer for each: the
 * one table that maps proxy failures to statuses. Upstream failures describe the worker with
 * their {@link #phrase}; pool failures carry the pool's own explanation.
 */
enum Failure {
    QUEUE_FULL(Status.SERVICE_UNAVAILABLE_503, null),
    QUEUE_TIMEOUT(Status.SERVICE_UNAVAILABLE_503, null),
    CLOSED(Status.SERVICE_UNAVAILABLE_503, null),
    NO_WORKER(Status.SERVICE_UNAVAILABLE_503, null),
    UPSTREAM_TIMEOUT(Status.GATEWAY_TIMEOUT_504, "did not answer in time"),
    UPSTREAM_BROKEN(Status.BAD_GATEWAY_502, "failed before answering"),
    UPSTREAM_BROKE_OFF(Status.BAD_GATEWAY_502, "broke off its response"),
    BAD_UPSTREAM_RESPONSE(Status.BAD_GATEWAY_502, "sent a response that is not valid HTTP");

    final Status status;
    private final String phrase;
    private final String label = name().toLowerCase(Locale.ROOT);

    Failure(Status status, String phrase) {
        this.status = status;
        this.phrase = phrase;
    }

    /** The metrics' {@code reason} label, such as {@code queue_full}. */
    String label() {
        return label;
    }

    /** @param subject the worker's name for upstream failures, the pool's explanation otherwise */
    String message(String subject) {
        return phrase == null ? subject : subject + " " + phrase;
    }

    static Failure of(PoolException.Reason reason) {
        return switch (reason) {
            case QUEUE_FULL -> QUEUE_FULL;
            case QUEUE_TIMEOUT -> QUEUE_TIMEOUT;
            case CLOSED -> CLOSED;
            case NO_UPSTREAM -> NO_WORKER;
        };
    }
}
