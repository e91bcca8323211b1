package dev.valve.pool;

import java.util.Optional;

/**
 * An address a request can be sent to: a local R worker process or a remote pod. The pool
 * guarantees at most one in-flight request per upstream.
 */
public interface Upstream {

    /** Short stable name used in logs and status, such as {@code "worker 3"}. */
    String name();

    /** Host to connect to. */
    String host();

    /** Port to connect to. */
    int port();

    /**
     * The process behind this upstream when this engine runs it; empty when something else
     * (Kubernetes, for a pod) owns its life cycle.
     */
    default Optional<ManagedProcess> process() {
        return Optional.empty();
    }
}
