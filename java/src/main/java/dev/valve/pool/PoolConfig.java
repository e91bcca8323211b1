package dev.valve.pool;

import java.time.Duration;

/**
 * Sizing and timing rules of a {@link WorkerPool}.
 *
 * @param nMin          upstreams kept running even when idle
 * @param nMax          upstreams never exceeded
 * @param maxAge        an idle upstream older than this is stopped (down to {@code nMin})
 * @param checkUnused   how often idle upstreams are looked at
 * @param queueMax      requests allowed to wait for an upstream; more are refused
 * @param queueTimeout  how long a request may wait for an upstream
 * @param recycling     when a launched upstream leaves for a fresh one
 * @param maxSessions   0: each request takes an upstream for itself (plumber); above 0: upstreams
 *                      serve sessions (Shiny), up to this many each, and a session's requests
 *                      share its upstream ({@link WorkerPool#visit})
 */
public record PoolConfig(int nMin, int nMax, Duration maxAge, Duration checkUnused,
                         int queueMax, Duration queueTimeout, Recycling recycling, int maxSessions) {

    /** Without recycling. */
    public PoolConfig(int nMin, int nMax, Duration maxAge, Duration checkUnused, int queueMax, Duration queueTimeout) {
        this(nMin, nMax, maxAge, checkUnused, queueMax, queueTimeout, Recycling.OFF);
    }

    /** One request per upstream at a time. */
    public PoolConfig(int nMin, int nMax, Duration maxAge, Duration checkUnused, int queueMax, Duration queueTimeout,
                      Recycling recycling) {
        this(nMin, nMax, maxAge, checkUnused, queueMax, queueTimeout, recycling, 0);
    }

    public PoolConfig {
        if (nMin < 0) {
            throw new IllegalArgumentException("nMin must be >= 0, got " + nMin);
        }
        if (nMax < 1 || nMax < nMin) {
            throw new IllegalArgumentException("nMax must be >= 1 and >= nMin, got " + nMax);
        }
        if (queueMax < 0) {
            throw new IllegalArgumentException("queueMax must be >= 0, got " + queueMax);
        }
        requirePositive("maxAge", maxAge);
        requirePositive("checkUnused", checkUnused);
        requirePositive("queueTimeout", queueTimeout);
        if (maxSessions < 0) {
            throw new IllegalArgumentException("maxSessions must be >= 0, got " + maxSessions);
        }
        if (recycling == null) {
            throw new IllegalArgumentException("recycling must be given; Recycling.OFF for none");
        }
    }

    /** Whether upstreams serve sticky sessions rather than one request at a time. */
    public boolean servesSessions() {
        return maxSessions > 0;
    }

    private static void requirePositive(String name, Duration value) {
        if (value == null || value.isNegative() || value.isZero()) {
            throw new IllegalArgumentException(name + " must be a positive duration, got " + value);
        }
    }
}
