package dev.valve.observe;

import dev.valve.pool.PoolStatus;

/**
 * Whether valve can take traffic, for {@code GET /readyz}: not while it stops; otherwise when a
 * worker (or pod) is ready, or when none is needed yet because one can be started at once (none
 * is starting, the pool is below {@code n_max} and not backing off after failures). While the
 * first workers start, and while start-ups keep failing, it is not ready.
 *
 * @param why a short reason, for the probe's body and the status page
 */
record Readiness(boolean ready, String why) {

    static Readiness of(PoolStatus pool, boolean stopping) {
        if (stopping) {
            return new Readiness(false, "stopping");
        }
        if (pool.idle() + pool.busy() > 0) {
            return new Readiness(true, (pool.idle() + pool.busy()) + " worker(s) ready");
        }
        if (pool.starting() > 0) {
            return new Readiness(false, pool.starting() + " worker(s) starting, none ready yet");
        }
        if (pool.canLaunch()) {
            return new Readiness(true, "no worker running; one starts on the first request");
        }
        return new Readiness(false, "no worker is ready and none can be started now");
    }
}
