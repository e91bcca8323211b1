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
import java.util.Comparator;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
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
    private final WorkerPool pool;
    private final StallGuard stallGuard;
    private final ProxyHandler handler;
    private final WebServer server;
    private final Path spoolDirectory;
    private final String url;
    private final String adminUrl;
    private final ServiceDiscovery discovery;
    private final Observer observer;
    private final IdleHeap idleHeap;
    /** Reloads on changes to the API's sources ({@code watch}); null when not asked for. */
    private volatile SourceWatcher watcher;
    private final AtomicBoolean stopped;

    private Valve(ValveConfig config, LogSink log, WorkerPool pool, StallGuard stallGuard, ProxyHandler handler,
                  WebServer server, Path spoolDirectory, ServiceDiscovery discovery, Observer observer,
                  AtomicBoolean stopped) {
        this.config = config;
        this.log = log;
        this.pool = pool;
        this.stallGuard = stallGuard;
        this.handler = handler;
        this.discovery = discovery;
        this.server = server;
        this.spoolDirectory = spoolDirectory;
        this.observer = observer;
        this.stopped = stopped;
        this.idleHeap = new IdleHeap(observer::finished, () -> {
            PoolStatus now = pool.status();
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
            return start(config, log, null, null);
        }
        String secret = newSecret();
        return start(config, log, new ProcessLauncher(config.launcher(secret), log), secret);
    }

    /** Starts with any launcher (tests use in-process stub workers), or none in service mode. */
    static Valve start(ValveConfig config, LogSink log, UpstreamLauncher launcher, String secret) throws ValveException {
        ignoreSigpipe();
        HELIDON_LOGGER.setLevel(Level.WARNING);
        return withOwnClassLoader(() -> {
            Path spool = createSpoolDirectory();
            WorkerPool pool = new WorkerPool(config.pool(), launcher, line -> log.add("valve", line));
            ServiceDiscovery discovery = launcher == null ? new ServiceDiscovery(config.service(), pool, log) : null;
            Observer observer = new Observer(config.accessLog() ? log : null, pool::status, discovery == null ? null
                    : () -> new Observer.Pods(discovery.servingPods(), discovery.suspectPods()));
            // Set when stopping starts, before the grace period: /readyz says 503 from then on.
            AtomicBoolean stopped = new AtomicBoolean();
            StallGuard stallGuard = new StallGuard(ValveConfig.seconds(config.clientTimeout()));
            ErrorAnswers answers = new ErrorAnswers(log);
            ProxyHandler handler = new ProxyHandler(pool, config.proxy(spool, secret), stallGuard, answers, observer,
                    log);
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
                workersReady = launcher != null ? pool.start() : null;
                WebServerConfig.Builder serverConfig = WebServer.builder();
                if (config.adminPort() != null) {
                    // Its own socket and routing, with Helidon's ordinary connections: nothing on it
                    // goes through the proxy's connection type, its queue or a worker.
                    AdminRoutes admin = new AdminRoutes(observer, pool::status, stopped::get,
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
                        .routing(routing -> routing.any(handler))
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
                pool.close();
                handler.close();
                stallGuard.close();
                deleteTree(spool);
                throw new ValveException(ValveException.BIND, "cannot listen on " + config.host() + ":"
                        + config.port() + (config.adminPort() == null ? "" : " and admin port " + config.adminPort())
                        + ": " + rootMessage(e), e);
            }
            Valve valve = new Valve(config, log, pool, stallGuard, handler, server, spool, discovery, observer, stopped);
            started.set(valve);
            if (valve.adminUrl() != null) {
                log.add("valve", "metrics, probes and status on " + valve.adminUrl());
            }
            if (discovery != null) {
                log.add("valve", "listening on " + valve.url() + ", forwarding to the pods of " + config.upstream());
                discovery.start();
                return valve;
            }
            log.add("valve", "listening on " + valve.url() + (config.nMin() == 0
                    ? ", starting workers on demand (n_min = 0)"
                    : ", waiting for " + config.nMin() + " worker(s)"));
            try {
                workersReady.get(Math.round(config.startupTimeout() * 1000) + 5000, TimeUnit.MILLISECONDS);
            } catch (ExecutionException | TimeoutException | InterruptedException e) {
                valve.stop(0);
                String why = e instanceof ExecutionException ? e.getCause().getMessage() : "timed out";
                throw new ValveException(ValveException.STARTUP, why, e);
            }
            if (config.watch()) {
                valve.watchSources();
            }
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
        return StatusReport.of(engine, pool.status(), observer);
    }

    private void watchSources() throws ValveException {
        Path directory = config.worker().workingDirectory();
        try {
            watcher = new SourceWatcher(directory, changed -> reloadInBackground(String.join(", ", changed) + " changed"));
        } catch (IOException e) {
            stop(0);
            throw new ValveException(ValveException.CONFIG, "cannot watch " + directory + " for changes: "
                    + e.getMessage(), e);
        }
        log.add("valve", "watching the .R files in " + directory + ": a change reloads the workers");
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
        long bound = Math.round(config.startupTimeout() * 1000) + 35_000;
        try {
            startReload("requested").get(bound, TimeUnit.MILLISECONDS);
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

    /** A reload that reports its outcome in the log instead of waiting for it: SIGHUP and {@code watch}. */
    void reloadInBackground(String why) {
        if (discovery == null) {
            startReload(why);
        }
    }

    private CompletableFuture<Void> startReload(String why) {
        log.add("valve", "reloading (" + why + "): new workers start with the current code");
        return pool.reload().whenComplete((done, error) -> log.add("valve", error == null
                ? "reloaded: new workers serve; the old ones leave after their requests"
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
        if (watcher != null) {
            watcher.close();
        }
        if (discovery != null) {
            discovery.close();
        }
        idleHeap.close();
        pool.close(ValveConfig.seconds(Math.max(0, graceSeconds)));
        server.stop();
        handler.close();
        stallGuard.close();
        deleteTree(spoolDirectory);
        log.add("valve", "stopped");
    }

    @Override
    public void close() {
        stop(0);
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
