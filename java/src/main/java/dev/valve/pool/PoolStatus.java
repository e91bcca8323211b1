package dev.valve.pool;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A consistent snapshot of the pool, taken under its lock.
 *
 * @param starting  upstreams launched but not yet answering HTTP
 * @param idle      upstreams ready and without a request
 * @param busy      upstreams with a request in flight
 * @param queued    requests waiting for an upstream
 * @param started   upstreams that became ready since the pool started
 * @param failed    launches that failed since the pool started
 * @param upstreams one entry per ready upstream
 * @param exits     launched upstreams that left, by {@link ExitReason#label}
 * @param canLaunch whether a launch could start now (below {@code n_max}, not backing off, not closed)
 */
public record PoolStatus(int starting, int idle, int busy, int queued, long started, long failed,
                         List<UpstreamStatus> upstreams, Map<String, Long> exits, boolean canLaunch) {

    /** Several pools (one per route) added up: one that can launch makes the sum able to. */
    public static PoolStatus combined(Collection<PoolStatus> pools) {
        if (pools.size() == 1) {
            return pools.iterator().next();
        }
        int starting = 0;
        int idle = 0;
        int busy = 0;
        int queued = 0;
        long started = 0;
        long failed = 0;
        List<UpstreamStatus> upstreams = new ArrayList<>();
        Map<String, Long> exits = new TreeMap<>();
        boolean canLaunch = false;
        for (PoolStatus pool : pools) {
            starting += pool.starting();
            idle += pool.idle();
            busy += pool.busy();
            queued += pool.queued();
            started += pool.started();
            failed += pool.failed();
            upstreams.addAll(pool.upstreams());
            pool.exits().forEach((reason, count) -> exits.merge(reason, count, Long::sum));
            canLaunch |= pool.canLaunch();
        }
        return new PoolStatus(starting, idle, busy, queued, started, failed, upstreams, exits, canLaunch);
    }

    /**
     * @param name        upstream name
     * @param pid         process id, -1 for upstreams without a process of ours (pods)
     * @param port        port it listens on
     * @param busy        whether a request is in flight
     * @param requests    requests it has answered or is answering
     * @param maxInFlight the most requests it ever had at once; anything above 1 is a bug
     * @param idleSeconds how long it has been idle; 0 while busy
     * @param sessions    WebSocket connections open on it (for a Shiny app, its live sessions)
     */
    public record UpstreamStatus(String name, long pid, int port, boolean busy, long requests,
                                 int maxInFlight, double idleSeconds, int sessions) {

        UpstreamStatus idleFor(long nanos) {
            return new UpstreamStatus(name, pid, port, busy, requests, maxInFlight,
                    Duration.ofNanos(Math.max(0, nanos)).toMillis() / 1000.0, sessions);
        }
    }
}
