package dev.valve.service;

import java.net.InetAddress;
import java.net.URI;
import java.net.UnknownHostException;
import java.security.Security;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

import dev.valve.log.LogSink;
import dev.valve.pool.HttpProbe;
import dev.valve.pool.WorkerPool;

/**
 * Keeps the pool's upstreams in line with what a (headless) service name resolves to: each
 * address is a pod. New pods join, pods that vanish are drained (a busy slot finishes its
 * request first), and a DNS failure keeps the last known set. A pod whose request failed leaves
 * at once and rejoins only when it answers HTTP again.
 *
 * <p>Resolution runs on its own thread, never on a request's.
 */
public final class ServiceDiscovery implements AutoCloseable {
    /**
     * @param service  {@code http://name:port}
     * @param perPod   requests one pod may have in flight at once
     * @param interval time between resolutions
     */
    public record Settings(URI service, int perPod, Duration interval) {
        public Settings {
            if (service == null || service.getHost() == null || !"http".equals(service.getScheme())) {
                throw new IllegalArgumentException("the upstream must look like http://name:port, got " + service);
            }
            if (perPod < 1) {
                throw new IllegalArgumentException("per_pod must be >= 1, got " + perPod);
            }
        }

        int port() {
            return service.getPort() > 0 ? service.getPort() : 80;
        }
    }

    private static final Duration PROBE_TIMEOUT = Duration.ofSeconds(2);

    private final Settings settings;
    private final WorkerPool pool;
    private final LogSink log;
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread thread = new Thread(r, "valve-service-discovery");
        thread.setDaemon(true);
        return thread;
    });
    /** Touched only on the timer thread. */
    private final Map<InetAddress, List<RemoteUpstream>> pods = new HashMap<>();
    private final Set<InetAddress> suspects = ConcurrentHashMap.newKeySet();
    /** {@code pods.size()}, for readers on other threads. */
    private volatile int serving;
    private volatile boolean closed;

    public ServiceDiscovery(Settings settings, WorkerPool pool, LogSink log) {
        this.settings = settings;
        this.pool = pool;
        this.log = log;
    }

    /**
     * The JVM caches successful look-ups for 30 s by default, which would hide pods that come
     * and go. Its policy is read at the JVM's first look-up, so call this before anything
     * resolves a name; see the README for rJava sessions.
     */
    public static void disableDnsCache() {
        Security.setProperty("networkaddress.cache.ttl", "0");
        Security.setProperty("networkaddress.cache.negative.ttl", "0");
    }

    /** Resolves once now, then every interval. */
    public void start() {
        timer.execute(this::resolve);
        long period = settings.interval().toMillis();
        timer.scheduleWithFixedDelay(this::resolve, period, period, TimeUnit.MILLISECONDS);
    }

    private void resolve() {
        if (closed) {
            return;
        }
        String host = settings.service().getHost();
        Set<InetAddress> found;
        try {
            found = new LinkedHashSet<>(List.of(InetAddress.getAllByName(host)));
        } catch (UnknownHostException | SecurityException e) {
            log.add("valve", "cannot resolve " + host + " (" + e.getMessage() + "); keeping " + pods.size() + " pod(s)");
            return;
        }
        for (InetAddress gone : new ArrayList<>(pods.keySet())) {
            if (!found.contains(gone)) {
                log.add("valve", "pod " + gone.getHostAddress() + " left " + host + "; draining it");
                retire(gone);
            }
        }
        suspects.retainAll(found);
        for (InetAddress address : found) {
            if (pods.containsKey(address)) {
                continue;
            }
            if (suspects.contains(address)) {
                if (!HttpProbe.answers(address.getHostAddress(), settings.port(), "/", PROBE_TIMEOUT)) {
                    continue;
                }
                suspects.remove(address);
            }
            admit(address);
        }
    }

    private void admit(InetAddress address) {
        List<RemoteUpstream> slots = new ArrayList<>(settings.perPod());
        for (int slot = 1; slot <= settings.perPod(); slot++) {
            RemoteUpstream upstream = new RemoteUpstream(address, settings.port(), slot, settings.perPod());
            slots.add(upstream);
            pool.admit(upstream, () -> failed(upstream));
        }
        pods.put(address, slots);
        serving = pods.size();
        log.add("valve", "pod " + address.getHostAddress() + ":" + settings.port() + " joined ("
                + settings.perPod() + " request(s) at a time)");
    }

    private void retire(InetAddress address) {
        List<RemoteUpstream> slots = pods.remove(address);
        serving = pods.size();
        if (slots != null) {
            slots.forEach(pool::retire);
        }
    }

    /** A request on the pod failed: take the pod out now and look again soon. */
    private void failed(RemoteUpstream upstream) {
        if (closed || !suspects.add(upstream.address())) {
            return;
        }
        timer.execute(() -> {
            log.add("valve", upstream.name() + " failed a request; it rejoins when it answers again");
            retire(upstream.address());
            resolve();
        });
    }

    /** Pods taking requests now. */
    public int servingPods() {
        return serving;
    }

    /** Pods out after a failed request, until they answer again. */
    public int suspectPods() {
        return suspects.size();
    }

    @Override
    public void close() {
        closed = true;
        timer.shutdownNow();
    }
}
