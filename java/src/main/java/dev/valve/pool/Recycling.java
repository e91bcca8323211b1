package dev.valve.pool;

import java.util.random.RandomGenerator;

/**
 * When a launched upstream has done enough and must make way for a fresh one, as gunicorn's
 * {@code max_requests}: R processes grow and never give memory back (plumber #450, #496).
 *
 * @param maxRequests       requests after which an upstream leaves; 0 never
 * @param maxRequestsJitter up to this many more, drawn per upstream, so that upstreams started
 *                          together do not all leave together
 * @param maxMemoryBytes    resident memory above which an upstream leaves after a request; 0 never
 */
public record Recycling(int maxRequests, int maxRequestsJitter, long maxMemoryBytes) {
    /** Upstreams stay until they are reaped, fail or the pool closes. */
    public static final Recycling OFF = new Recycling(0, 0, 0);

    public Recycling {
        if (maxRequests < 0 || maxRequestsJitter < 0 || maxMemoryBytes < 0) {
            throw new IllegalArgumentException("recycling limits must be >= 0: " + maxRequests + ", "
                    + maxRequestsJitter + ", " + maxMemoryBytes);
        }
    }

    /** The requests one new upstream may serve, 0 for no limit. */
    long requestLimit(RandomGenerator random) {
        if (maxRequests == 0) {
            return 0;
        }
        return maxRequests + (maxRequestsJitter == 0 ? 0 : random.nextInt(maxRequestsJitter + 1));
    }

    boolean checksMemory() {
        return maxMemoryBytes > 0;
    }

    /** @param residentBytes as {@link ManagedProcess#residentBytes()} reads it; negative when unknown */
    boolean overMemory(long residentBytes) {
        return checksMemory() && residentBytes > maxMemoryBytes;
    }
}
