package dev.valve.proxy;

import java.io.IOException;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import dev.valve.pool.Upstream;

/**
 * The one idle kept-alive connection of each upstream, between its requests. The pool's lease
 * already makes an upstream exclusive, so a connection is taken and parked again by the request
 * holding the lease, and never shared; a connection is forgotten (closed) when its upstream
 * leaves the pool.
 */
final class KeptConnections {
    private final Map<Upstream, UpstreamConnection> idle = new ConcurrentHashMap<>();

    /** The upstream's kept connection, now the caller's alone; null when there is none. */
    UpstreamConnection take(Upstream upstream) {
        return idle.remove(upstream);
    }

    /** Keeps a connection whose last response ended cleanly for the upstream's next request. */
    void park(Upstream upstream, UpstreamConnection connection) {
        UpstreamConnection previous = idle.put(upstream, connection);
        if (previous != null) {
            closeQuietly(previous);
        }
    }

    /** The upstream left the pool: its connection goes with it. */
    void forget(Upstream upstream) {
        UpstreamConnection connection = idle.remove(upstream);
        if (connection != null) {
            closeQuietly(connection);
        }
    }

    /** The engine is stopping: no connection is kept any more. */
    void closeAll() {
        idle.keySet().forEach(this::forget);
    }

    static void closeQuietly(UpstreamConnection connection) {
        try {
            connection.close();
        } catch (IOException e) {
            // The connection is ours alone and going away either way.
        }
    }
}
