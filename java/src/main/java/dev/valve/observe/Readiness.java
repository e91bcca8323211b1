package dev.valve.observe;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import dev.valve.pool.PoolStatus;

/**
 * Whether valve can take traffic, for {@code GET /readyz}: not while it stops; otherwise when a
 * worker (or pod) is ready, or when none is needed yet because one can be started at once (none
 * is starting, the pool is below {@code n_max} and not backing off after failures). While the
 * first workers start, and while start-ups keep failing, it is not ready. With several routes,
 * it is ready when every route is.
 *
 * @param why a short reason, for the probe's body and the status page
 */
record Readiness(boolean ready, String why) {

    /** Ready when every route is: a load balancer sends traffic for all of them alike. */
    static Readiness of(Map<String, PoolStatus> pools, boolean stopping) {
        if (pools.size() == 1 || stopping) {
            return of(pools.values().iterator().next(), stopping);
        }
        boolean ready = true;
        List<String> why = new ArrayList<>();
        for (Map.Entry<String, PoolStatus> route : pools.entrySet()) {
            Readiness each = of(route.getValue(), false);
            ready &= each.ready();
            why.add(route.getKey() + ": " + each.why());
        }
        return new Readiness(ready, String.join("; ", why));
    }

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
