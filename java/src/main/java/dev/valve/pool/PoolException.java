package dev.valve.pool;

/** A request could not be given an upstream. {@link #reason()} decides the HTTP answer. */
public final class PoolException extends Exception {
    private static final long serialVersionUID = 1L;

    /** Why no upstream was leased. */
    public enum Reason {
        /** The wait queue is at {@code queue_max}. */
        QUEUE_FULL,
        /** The request waited {@code queue_timeout}. */
        QUEUE_TIMEOUT,
        /** The pool is stopping or stopped. */
        CLOSED,
        /** No upstream is running and none could be started. */
        NO_UPSTREAM
    }

    private final Reason reason;

    PoolException(Reason reason, String message) {
        super(message, null, false, false);
        this.reason = reason;
    }

    public Reason reason() {
        return reason;
    }
}
