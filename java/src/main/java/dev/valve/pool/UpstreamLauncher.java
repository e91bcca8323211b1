package dev.valve.pool;

import java.util.concurrent.CompletableFuture;

/**
 * Starts upstreams for the pool. The returned future completes once the upstream answers HTTP,
 * or fails with a {@link LaunchException} that carries what the upstream said before it failed.
 */
public interface UpstreamLauncher extends AutoCloseable {

    CompletableFuture<Upstream> launch(int id);

    @Override
    default void close() {
    }
}
