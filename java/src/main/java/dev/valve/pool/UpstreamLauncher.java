package dev.valve.pool;

import java.util.concurrent.CompletableFuture;

/**
 * Starts upstreams for the pool. The returned future completes once the upstream answers HTTP,
 * or fails with a {@link LaunchException} that carries what the upstream said before it failed.
 */
public interface UpstreamLauncher extends AutoCloseable {

    CompletableFuture<Upstream> launch(int id);

    /** Called once when the pool starts, before any launch, to get ready for the first one. */
    default void prepare() {
    }

    /** Later launches must run the API's current code (a rolling reload); called before they are asked for. */
    default void reload() {
    }

    @Override
    default void close() {
    }
}
