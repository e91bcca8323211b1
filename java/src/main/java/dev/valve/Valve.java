package dev.valve;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Function;
import java.util.logging.Level;
import java.util.logging.Logger;
import java.util.stream.Stream;

import dev.valve.log.LogSink;
import dev.valve.observe.AdminRoutes;
import dev.valve.observe.Observer;
import dev.valve.observe.StatusReport;
import dev.valve.pool.PoolStatus;
import dev.valve.pool.ProcessLauncher;
import dev.valve.pool.UpstreamLauncher;
import dev.valve.pool.WorkerPool;
import dev.valve.proxy.ClientConnections;
import dev.valve.proxy.ErrorAnswers;
import dev.valve.proxy.ProxyHandler;
import dev.valve.proxy.Routes;
import dev.valve.proxy.StallGuard;
import dev.valve.service.ServiceDiscovery;
import dev.valve.worker.SourceWatcher;

import io.helidon.http.DirectHandler;
import io.helidon.webserver.WebServer;
import io.helidon.webserver.WebServerConfig;
import io.helidon.webserver.http.DirectHandlers;
import io.helidon.webserver.http1.Http1Config;

import sun.misc.Signal;
import sun.misc.SignalHandler;

/**
 * The engine, as R sees it: {@link #start(String)} with a JSON configuration, then
 * {@link #statusJson()}, {@link #drainLog()} and {@link #stop(double)}. Nothing else is public
 * API; every failure R must explain is a {@link ValveException} with a kind.
 */
public final class Valve implements AutoCloseable {
    /** Helidon logs through java.util.logging; its INFO lines would land on R's terminal, not the console. */
    private static final Logger HELIDON_LOGGER = Logger.getLogger("io.helidon");
    private static final AtomicBoolean SIGPIPE_IGNORED = new AtomicBoolean();
    private static final int LOG_CAPACITY = 10_000;
    /** The admin listener's name among Helidon's sockets. */
    private static final String ADMIN_SOCKET = "admin";

    private final ValveConfig config;
    private final LogSink log;
    /** Each route's app, in the order configured; a single app is the one route {@code /}. */
    private final List<App> apps;
    private final StallGuard stallGuard;
    private final WebServer server;
    private final Path spoolDirectory;
    private final String url;
    private final String adminUrl;
    private final ServiceDiscovery discovery;
    private final Observer observer;
    private final IdleHeap idleHeap;
    /** Reload on changes to the apps' sources ({@code watch}); empty when not asked for. */
    private final List<SourceWatcher> watchers = new CopyOnWriteArrayList<>();
    private final AtomicBoolean stopped;

    /**
     * One route's app at run time: its own pool and the handler that forwards to it.
     *
     * @param named how its log lines and errors begin: {@code "route /api: "}, empty for a single app
     */
    private record App(ValveConfig.Route route, WorkerPool pool, ProxyHandler handler, String named) {
        String prefix() {
            return route.prefix();
        }

        /** The pool's future, failing with a message that names the route (a single app's as it is). */
        CompletableFuture<Void> naming(CompletableFuture<Void> outcome) {
            if (named.isEmpty()) {
                return outcome;
            }
            return outcome.exceptionallyCompose(error -> {
                Throwable cause = error instanceof CompletionException && error.getCause() != null
                        ? error.getCause() : error;
                return CompletableFuture.failedFuture(new IllegalStateException(named + cause.getMessage(), cause));
            });
        }
    }

    private Valve(ValveConfig config, LogSink log, List<App> apps, StallGuard stallGuard, WebServer server,
                  Path spoolDirectory, ServiceDiscovery discovery, Observer observer, AtomicBoolean stopped) {
        this.config = config;
        this.log = log;
        this.apps = apps;
        this.stallGuard = stallGuard;
        this.discovery = discovery;
        this.server = server;
        this.spoolDirectory = spoolDirectory;
        this.observer = observer;
        this.stopped = stopped;
        this.idleHeap = new IdleHeap(observer::finished, () -> {
            PoolStatus now = PoolStatus.combined(pools(apps).values());
            return now.busy() == 0 && now.queued() == 0;
        }, System::gc).start();
        // Bound once: Helidon reports port -1 after a stop, and the handle should still say where it was.
        String host = config.host().contains(":") ? "[" + config.host() + "]" : config.host();
        this.url = "http://" + host + ":" + server.port();
        this.adminUrl = config.adminPort() == null ? null : "http://" + host + ":" + server.port(ADMIN_SOCKET);
    }

    /**
     * Binds the port, starts {@code n_min} workers and waits until they answer HTTP.
     *
     * @param configJson a {@link ValveConfig} as JSON
     * @throws ValveException with kind {@code config}, {@code bind} or {@code startup}
     */
    public static Valve start(String configJson) throws ValveException {
        ValveConfig config;
        try {
            config = ValveConfig.fromJson(configJson);
        } catch (IllegalArgumentException e) {
            throw new ValveException(ValveException.CONFIG, e.getMessage(), e);
        }
        return start(config, new LogSink(LOG_CAPACITY, null));
    }

    /** Local workers, or service mode when the configuration names an upstream. */
    static Valve start(ValveConfig config, LogSink log) throws ValveException {
        if (config.upstream() != null) {
            ServiceDiscovery.disableDnsCache();
            // Pods are not ours: they get no secret, which their API code would otherwise see.
            return startRoutes(config, log, route -> null, null);
        }
        String secret = newSecret();
        Map<String, UpstreamLauncher> launchers = new LinkedHashMap<>();
        for (ValveConfig.Route route : config.routesToServe()) {
            // With several apps, each worker's name (and log tag) says whose it is: "[/api worker 2]".
            String names = config.routes() == null ? "" : route.prefix() + " ";
            launchers.put(route.prefix(), new ProcessLauncher(ValveConfig.launcher(route.app(), secret, names), log));
        }
        return startRoutes(config, log, route -> launchers.get(route.prefix()), secret);
    }

    /** Starts with any launcher (tests use in-process stub workers), or none in service mode. */
    static Valve start(ValveConfig config, LogSink log, UpstreamLauncher launcher, String secret) throws ValveException {
        return startRoutes(config, log, route -> launcher, secret);
    }

    /**
     * Starts with each route's launcher; {@code launchers} gives null in service mode.
     */
    static Valve startRoutes(ValveConfig config, LogSink log, Function<ValveConfig.Route, UpstreamLauncher> launchers,
                             String secret) throws ValveException {
        ignoreSigpipe();
        HELIDON_LOGGER.setLevel(Level.WARNING);
        return withOwnClassLoader(() -> {
            Path spool = createSpoolDirectory();
            // Set when stopping starts, before the grace period: /readyz says 503 from then on.
            AtomicBoolean stopped = new AtomicBoolean();
            StallGuard stallGuard = new StallGuard(ValveConfig.seconds(config.clientTimeout()));
            ErrorAnswers answers = new ErrorAnswers(log);
            List<ValveConfig.Route> routes = config.routesToServe();
            List<WorkerPool> pools = new ArrayList<>();
            List<String> names = new ArrayList<>();
            for (ValveConfig.Route route : routes) {
                String named = config.routes() == null ? "" : "route " + route.prefix() + ": ";
                names.add(named);
                pools.add(new WorkerPool(ValveConfig.pool(route.app()), launchers.apply(route),
                        line -> log.add("valve", named + line)));
            }
            WorkerPool first = pools.get(0);
            boolean serviceMode = config.upstream() != null;
            ServiceDiscovery discovery = serviceMode ? new ServiceDiscovery(config.service(), first, log) : null;
            // Filled in below; the observer reads the pools once per scrape.
            List<App> apps = new ArrayList<>();
            Observer observer = new Observer(config.accessLog() ? log : null, () -> pools(routes, pools),
                    discovery == null ? null
                    : () -> new Observer.Pods(discovery.servingPods(), discovery.suspectPods()));
            Map<String, ProxyHandler> handlers = new LinkedHashMap<>();
            for (int i = 0; i < routes.size(); i++) {
                ProxyHandler handler = new ProxyHandler(pools.get(i), config.proxy(routes.get(i), spool, secret),
                        stallGuard, answers, observer, log);
                handlers.put(routes.get(i).prefix(), handler);
                apps.add(new App(routes.get(i), pools.get(i), handler, names.get(i)));
            }
            Routes routing = new Routes(handlers, answers, observer);
            Http1Config http1 = Http1Config.builder()
                    .maxPrologueLength(ValveConfig.MAX_REQUEST_LINE_BYTES)
                    .maxHeadersSize(8 * ValveConfig.MAX_HEADER_BYTES)
                    .addReceiveListener(stallGuard)
                    .build();
            WebServer server = null;
            CompletableFuture<Void> workersReady = null;
            // Filled in once the server runs: the status report needs the admin URL, the admin routes the report.
            AtomicReference<Valve> started = new AtomicReference<>();
            try {
                checkBindable(config.host(), config.port());
                if (config.adminPort() != null) {
                    checkBindable(config.host(), config.adminPort());
                }
                // A worker takes longer to answer than Helidon takes to start: both start at once.
                workersReady = serviceMode ? null : startAll(apps);
                WebServerConfig.Builder serverConfig = WebServer.builder();
                if (config.adminPort() != null) {
                    // Its own socket and routing, with Helidon's ordinary connections: nothing on it
                    // goes through the proxy's connection type, its queue or a worker.
                    AdminRoutes admin = new AdminRoutes(observer, () -> pools(apps), stopped::get,
                            () -> started.get() == null ? null : started.get().statusReport(), ValveConfig::toJson);
                    serverConfig.putSocket(ADMIN_SOCKET, socket -> socket.host(config.host()).port(config.adminPort()))
                            .routing(ADMIN_SOCKET, admin::register);
                }
                server = serverConfig
                        .host(config.host())
                        .port(config.port())
                        .shutdownHook(false)
                        .maxPayloadSize(config.maxBodySize())
                        .idleConnectionTimeout(ValveConfig.seconds(config.clientTimeout()))
                        .idleConnectionPeriod(idleCheckPeriod(config.clientTimeout()))
                        // valve's own connection type is the only one: it serves HTTP/1.0 through
                        // Helidon's HTTP/1.1 parser, and with no second type to choose from Helidon
                        // never sniffs, so unrecognisable request lines get a 400, not a silent close.
                        .protocolsDiscoverServices(false)
                        .addConnectionSelector(new ClientConnections(http1))
                        .directHandlers(DirectHandlers.builder()
                                .update(builder -> {
                                    for (DirectHandler.EventType type : DirectHandler.EventType.values()) {
                                        builder.addHandler(type, answers);
                                    }
                                })
                                .build())
                        .routing(builder -> builder.any(routing))
                        .build()
                        .start();
                // Helidon 4.5 logs a failed bind and returns a stopped server instead of throwing.
                if (!server.isRunning()) {
                    throw new IOException("the listener did not start (is the port taken?)");
                }
            } catch (IOException | RuntimeException e) {
                if (server != null) {
                    server.stop();
                }
                if (discovery != null) {
                    discovery.close();
                }
                for (App app : apps) {
                    app.pool().close();
                    app.handler().close();
                }
                stallGuard.close();
                deleteTree(spool);
                throw new ValveException(ValveException.BIND, "cannot listen on " + config.host() + ":"
                        + config.port() + (config.adminPort() == null ? "" : " and admin port " + config.adminPort())
                        + ": " + rootMessage(e), e);
            }
            Valve valve = new Valve(config, log, List.copyOf(apps), stallGuard, server, spool, discovery, observer,
                    stopped);
            started.set(valve);
            if (valve.adminUrl() != null) {
                log.add("valve", "metrics, probes and status on " + valve.adminUrl());
            }
            if (discovery != null) {
                log.add("valve", "listening on " + valve.url() + ", forwarding to the pods of " + config.upstream());
                discovery.start();
                return valve;
            }
            log.add("valve", "listening on " + valve.url() + (config.routes() != null
                    ? ", routes " + String.join(", ", handlers.keySet()) + ", waiting for their first workers"
                    : config.nMin() == 0
                    ? ", starting workers on demand (n_min = 0)"
                    : ", waiting for " + config.nMin() + " worker(s)"));
            try {
                workersReady.get(Math.round(config.startupTimeout() * 1000) + 5000, TimeUnit.MILLISECONDS);
            } catch (ExecutionException | TimeoutException | InterruptedException e) {
                valve.stop(0);
                String why = e instanceof ExecutionException ? e.getCause().getMessage() : "timed out";
                throw new ValveException(ValveException.STARTUP, why, e);
            }
            valve.watchSources();
            return valve;
        });
    }

    public String url() {
        return url;
    }

    /** Where /metrics, /healthz, /readyz and /status answer; null without an admin listener. */
    public String adminUrl() {
        return adminUrl;
    }

    public boolean isRunning() {
        return !stopped.get() && server.isRunning();
    }

    /** The {@link StatusReport} as JSON: R's print method, {@code valve_workers()} and {@code valve_status()}. */
    public String statusJson() {
        return ValveConfig.toJson(statusReport());
    }

    private Map<String, Object> statusReport() {
        StatusReport.Engine engine = new StatusReport.Engine(isRunning() ? "running" : "stopped", url, adminUrl,
                config.nMin(), config.nMax(), config.upstream(), stopped.get());
        List<StatusReport.RouteStatus> routes = new ArrayList<>();
        for (App app : apps) {
            routes.add(new StatusReport.RouteStatus(app.prefix(), app.route().app().nMin(), app.route().app().nMax(),
                    app.pool().status()));
        }
        return StatusReport.of(engine, routes, observer);
    }

    /** Each route's pool state, by prefix. */
    private static Map<String, PoolStatus> pools(List<App> apps) {
        Map<String, PoolStatus> out = new LinkedHashMap<>();
        apps.forEach(app -> out.put(app.prefix(), app.pool().status()));
        return out;
    }

    private static Map<String, PoolStatus> pools(List<ValveConfig.Route> routes, List<WorkerPool> pools) {
        Map<String, PoolStatus> out = new LinkedHashMap<>();
        for (int i = 0; i < routes.size(); i++) {
            out.put(routes.get(i).prefix(), pools.get(i).status());
        }
        return out;
    }

    /** Every pool's first workers; a failure names its route. */
    private static CompletableFuture<Void> startAll(List<App> apps) {
        return CompletableFuture.allOf(apps.stream().map(app -> app.naming(app.pool().start()))
                .toArray(CompletableFuture[]::new));
    }

    private void watchSources() throws ValveException {
        for (App app : apps) {
            if (!app.route().app().watch()) {
                continue;
            }
            Path directory = app.route().app().worker().workingDirectory();
            try {
                watchers.add(new SourceWatcher(directory, changed -> startReload(app,
                        String.join(", ", changed) + " changed")));
            } catch (IOException e) {
                stop(0);
                throw new ValveException(ValveException.CONFIG, "cannot watch " + directory + " for changes: "
                        + e.getMessage(), e);
            }
            log.add("valve", app.named() + "watching the .R files in " + directory
                    + ": a change reloads the workers");
        }
    }

    /**
     * Replaces every worker with one running the API's current code, as {@link WorkerPool#reload()}
     * does, and waits until the first new one serves (the old ones then leave after their
     * requests) or failed to start (the old ones keep serving).
     *
     * @throws ValveException with kind {@code reload} when the new workers failed to start, in
     *                        service mode, or when valve is stopping
     */
    public void reload() throws ValveException {
        if (discovery != null) {
            throw new ValveException(ValveException.RELOAD,
                    "service mode runs no workers of its own to reload: redeploy the pods", null);
        }
        // A launch may first wait out the crash backoff (up to 30 s), then take startup_timeout.
        double startup = apps.stream().mapToDouble(app -> app.route().app().startupTimeout()).max().orElseThrow();
        long bound = Math.round(startup * 1000) + 35_000;
        try {
            CompletableFuture.allOf(apps.stream().map(app -> startReload(app, "requested"))
                    .toArray(CompletableFuture[]::new)).get(bound, TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            throw new ValveException(ValveException.RELOAD, "the new workers could not start, so the running ones "
                    + "keep serving: " + e.getCause().getMessage(), e.getCause());
        } catch (TimeoutException e) {
            throw new ValveException(ValveException.RELOAD, "no new worker was ready within " + bound / 1000
                    + " s; the reload goes on in the background", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ValveException(ValveException.RELOAD, "interrupted; the reload goes on in the background", e);
        }
    }

    /**
     * A reload of every app that reports its outcome in the log instead of waiting for it:
     * SIGHUP. ({@code watch} reloads the one app whose sources changed.)
     */
    void reloadInBackground(String why) {
        if (discovery == null) {
            apps.forEach(app -> startReload(app, why));
        }
    }

    private CompletableFuture<Void> startReload(App app, String why) {
        String named = app.named();
        log.add("valve", named + "reloading (" + why + "): new workers start with the current code");
        return app.naming(app.pool().reload())
                .whenComplete((done, error) -> log.add("valve", error == null
                        ? named + "reloaded: new workers serve; the old ones leave after their requests"
                        : "the reload failed, so the running workers keep serving: " + error.getMessage()));
    }

    /** Engine and worker log lines since the last call. */
    public String[] drainLog() {
        return log.drain();
    }

    /**
     * Stops taking new work (late requests get 503), lets requests in flight finish for up to
     * {@code graceSeconds}, then stops every worker and waits for them to exit. Idempotent.
     */
    public void stop(double graceSeconds) {
        if (!stopped.compareAndSet(false, true)) {
            return;
        }
        log.add("valve", "stopping");
        watchers.forEach(SourceWatcher::close);
        if (discovery != null) {
            discovery.close();
        }
        idleHeap.close();
        closePools(ValveConfig.seconds(Math.max(0, graceSeconds)));
        server.stop();
        apps.forEach(app -> app.handler().close());
        stallGuard.close();
        deleteTree(spoolDirectory);
        log.add("valve", "stopped");
    }

    @Override
    public void close() {
        stop(0);
    }

    /**
     * Every pool at once, so that their grace periods run side by side; on platform threads, as
     * a pool's close waits for processes to exit. Each close bounds its own waits.
     */
    private void closePools(Duration grace) {
        if (apps.size() == 1) {
            apps.get(0).pool().close(grace);
            return;
        }
        List<Thread> closing = new ArrayList<>();
        for (App app : apps) {
            closing.add(Thread.ofPlatform().daemon().name("valve-stop-" + app.prefix())
                    .start(() -> app.pool().close(grace)));
        }
        for (Thread thread : closing) {
            try {
                // Past a pool's own bounds (grace, then SIGTERM and SIGKILL): stop waiting for it.
                thread.join(grace.plusSeconds(30));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    /**
     * A client that disconnects mid-response makes the JVM raise SIGPIPE, and under rJava R's
     * handler runs on a Java thread and aborts R. Ignoring it turns the write into an IOException.
     */
    private static void ignoreSigpipe() {
        if (SIGPIPE_IGNORED.compareAndSet(false, true)) {
            try {
                Signal.handle(new Signal("PIPE"), SignalHandler.SIG_IGN);
            } catch (IllegalArgumentException e) {
                // No SIGPIPE on this platform.
            }
        }
    }

    /**
     * Helidon finds its protocol providers through the thread's context class loader; under rJava
     * with a package-private loader that is not ours, so set it for the duration of the start.
     */
    private static <T> T withOwnClassLoader(Starter<T> starter) throws ValveException {
        Thread thread = Thread.currentThread();
        ClassLoader previous = thread.getContextClassLoader();
        thread.setContextClassLoader(Valve.class.getClassLoader());
        try {
            return starter.start();
        } finally {
            thread.setContextClassLoader(previous);
        }
    }

    @FunctionalInterface
    private interface Starter<T> {
        T start() throws ValveException;
    }

    /** A per-run secret that workers demand, so local users cannot bypass the queue by calling a worker. */
    static String newSecret() {
        byte[] bytes = new byte[32];
        new SecureRandom().nextBytes(bytes);
        return HexFormat.of().formatHex(bytes);
    }

    /** Helidon looks for idle connections on a timer: often enough that a timeout is kept within ~25%. */
    private static Duration idleCheckPeriod(double clientTimeoutSeconds) {
        return ValveConfig.seconds(Math.min(5.0, Math.max(0.1, clientTimeoutSeconds / 4)));
    }

    /** Binding once ourselves gives the operating system's own reason, such as "Address already in use". */
    private static void checkBindable(String host, int port) throws IOException {
        if (port == 0) {
            return;
        }
        try (ServerSocket probe = new ServerSocket()) {
            probe.bind(new InetSocketAddress(InetAddress.getByName(host), port));
        }
    }

    private static Path createSpoolDirectory() {
        try {
            return Files.createTempDirectory("valve-spool-");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void deleteTree(Path directory) {
        try (Stream<Path> paths = Files.walk(directory)) {
            paths.sorted(Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
        } catch (IOException e) {
            // Already gone, or not ours to delete: nothing to clean.
        }
    }

    private static String rootMessage(Throwable error) {
        Throwable root = error;
        while (root.getCause() != null) {
            root = root.getCause();
        }
        return root.getMessage();
    }
}
