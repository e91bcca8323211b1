package dev.valve.pool;

import java.time.Duration;

/**
 * One place a request can be sent to: today a local R worker process, later a remote pod.
 * The pool guarantees at most one in-flight request per upstream.
 */
public interface Upstream {

    /** Short stable name used in logs and status, such as {@code "worker 3"}. */
    String name();

    /** Host to connect to. */
    String host();

    /** Port to connect to. */
    int port();

    /** Operating-system process id, or -1 when the upstream is not a local process. */
    long pid();

    /** Whether the upstream can still take requests; a dead process answers false. */
    boolean isAlive();

    /** Registers a callback run once when the upstream dies on its own. */
    void onDeath(Runnable callback);

    /** Stops the upstream, politely first and forcibly after {@code grace}. Idempotent. */
    void stop(Duration grace);
}
