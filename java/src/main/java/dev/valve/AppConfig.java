package dev.valve;

import dev.valve.worker.WorkerSpec;

/**
 * One app behind a route: what it serves and the settings of its own pool, the part of
 * {@link ValveConfig} that each app may set for itself (R's {@code valve_app()}, a route in the
 * config file). A null member takes the top-level value ({@link ValveConfig#apps()} fills them
 * in); the rules are {@link ValveConfig}'s, applied to every app alike.
 *
 * @param worker what the app's workers serve
 */
public record AppConfig(WorkerSpec worker, Integer nMin, Integer nMax, Double checkUnused, Double maxAge,
                        Integer queueMax, Double queueTimeout, Double requestTimeout, Double startupTimeout,
                        Integer maxRequests, Integer maxRequestsJitter, Integer maxWorkerMemory, Boolean watch,
                        Boolean preload, Integer maxSessions) {

    /** The names of the members an app may set, besides what it serves, as snake_case keys. */
    static final java.util.List<String> KEYS = java.util.List.of("n_min", "n_max", "check_unused", "max_age",
            "queue_max", "queue_timeout", "request_timeout", "startup_timeout", "max_requests",
            "max_requests_jitter", "max_worker_memory", "watch", "preload", "max_sessions");

    /** This app with every member it leaves unset taken from {@code top}. */
    AppConfig inheriting(AppConfig top) {
        return new AppConfig(worker, or(nMin, top.nMin()), or(nMax, top.nMax()), or(checkUnused, top.checkUnused()),
                or(maxAge, top.maxAge()), or(queueMax, top.queueMax()), or(queueTimeout, top.queueTimeout()),
                or(requestTimeout, top.requestTimeout()), or(startupTimeout, top.startupTimeout()),
                or(maxRequests, top.maxRequests()), or(maxRequestsJitter, top.maxRequestsJitter()),
                or(maxWorkerMemory, top.maxWorkerMemory()), or(watch, top.watch()), or(preload, top.preload()),
                or(maxSessions, top.maxSessions()));
    }

    private static <T> T or(T value, T fallback) {
        return value != null ? value : fallback;
    }
}
