package dev.valve;

import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import dev.valve.pool.PoolConfig;
import dev.valve.pool.ProcessLauncher;
import dev.valve.pool.Recycling;
import dev.valve.proxy.ProxyHandler;
import dev.valve.service.ServiceDiscovery;
import dev.valve.worker.WorkerProtocol;
import dev.valve.worker.WorkerSpec;

/**
 * Everything the engine needs, as one value, and the one place that knows every default and
 * every rule: R sends it as JSON with snake_case names, the command line builds it from its
 * flags, and a value it refuses never reaches anything that creates a file or a process. A
 * missing (null) member takes its default ({@link #defaultsJson()}). Durations are seconds,
 * sizes bytes.
 *
 * @param host           address to listen on
 * @param port           port to listen on; 0 picks a free one
 * @param nMin           workers kept running
 * @param nMax           workers never exceeded
 * @param checkUnused    seconds between looks for idle workers
 * @param maxAge         seconds a worker may stay idle before it is stopped (down to n_min)
 * @param queueMax       requests that may wait for a worker; more get 503
 * @param queueTimeout   seconds a request may wait for a worker; then 503
 * @param requestTimeout seconds a worker may stay silent on a request; then 504
 * @param startupTimeout seconds a worker may take to answer HTTP after it is spawned
 * @param maxBodySize    largest request body in bytes; larger gets 413
 * @param memoryBuffer   bytes of one body kept in memory before spilling to a temporary file
 * @param clientTimeout  seconds a client connection may stay silent (in headers, in a body, or
 *                       idle between requests) before it is closed
 * @param maxRequests    requests after which a worker is replaced by a fresh one; 0 never
 * @param maxRequestsJitter up to this many more per worker (drawn for each), so workers started
 *                       together are not replaced together
 * @param maxWorkerMemory MiB of resident memory above which a worker is replaced after a
 *                       request; 0 never
 * @param watch          reload the workers when a {@code .R} file in the API's directory changes
 * @param preload        fork workers from a template R process that loaded the API once
 * @param upstream       service mode: {@code http://name:port} of a (headless) service whose
 *                       addresses are the pods; no local workers then
 * @param perPod         service mode: requests one pod may have in flight at once
 * @param resolveInterval service mode: seconds between resolutions of the name
 * @param adminPort      port of the admin listener (metrics, probes, status page) on the same host;
 *                       0 picks a free one; null for none
 * @param accessLog      whether every request gets an access log line
 * @param worker         what local workers serve; null in service mode and with routes
 * @param routes         several apps behind one port, by path prefix (longest wins), each with
 *                       its own pool; its members take the top-level values they leave unset.
 *                       Null for one app ({@code worker} or {@code upstream}) on every path.
 * @param maxSessions    for a Shiny app: sessions one worker serves at most; more start workers
 *                       (up to n_max), and beyond that new sessions wait in the queue
 */
public record ValveConfig(String host, Integer port, Integer nMin, Integer nMax,
                          Double checkUnused, Double maxAge, Integer queueMax, Double queueTimeout,
                          Double requestTimeout, Double startupTimeout, Long maxBodySize,
                          Integer memoryBuffer, Double clientTimeout, Integer maxRequests,
                          Integer maxRequestsJitter, Integer maxWorkerMemory, Boolean watch, Boolean preload,
                          String upstream,
                          Integer perPod,
                          Double resolveInterval, Integer adminPort, Boolean accessLog, WorkerSpec worker,
                          Map<String, AppConfig> routes, Integer maxSessions) {

    /** The defaults of the user-facing arguments, by their snake_case name, in the order of {@code ?valve_run}. */
    private static final Map<String, Object> DEFAULTS = defaults();
    private static final int DEFAULT_MEMORY_BUFFER = 1024 * 1024;
    private static final Pattern HOST = Pattern.compile("[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?|::");
    /** A route: {@code /} or segments of characters a path may hold unencoded, without a trailing slash. */
    private static final Pattern PREFIX = Pattern.compile("/|(/[A-Za-z0-9._~!$&'()*+,;=:@-]+)+");
    /** The route of a single app: every path, passed on as it is. */
    public static final String ROOT = "/";

    private static Map<String, Object> defaults() {
        Map<String, Object> defaults = new LinkedHashMap<>();
        defaults.put("host", "127.0.0.1");
        defaults.put("port", 3000);
        defaults.put("n_min", 1);
        defaults.put("n_max", 3);
        defaults.put("check_unused", 10.0);
        defaults.put("max_age", 300.0);
        defaults.put("queue_max", 1000);
        defaults.put("queue_timeout", 60.0);
        defaults.put("request_timeout", 300.0);
        defaults.put("startup_timeout", 60.0);
        defaults.put("max_body_size", 256L * 1024 * 1024);
        defaults.put("client_timeout", 30.0);
        defaults.put("per_pod", 1);
        defaults.put("resolve_interval", 5.0);
        defaults.put("max_requests", 0);
        defaults.put("max_requests_jitter", 0);
        defaults.put("max_worker_memory", 0);
        defaults.put("watch", false);
        defaults.put("preload", false);
        defaults.put("admin_port", null);
        defaults.put("access_log", true);
        defaults.put("max_sessions", 20);
        return Collections.unmodifiableMap(defaults);
    }

    private static final ObjectMapper JSON = JsonMapper.builder()
            .propertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .build();

    public ValveConfig {
        host = orDefault(host, "host");
        port = orDefault(port, "port");
        nMin = orDefault(nMin, "n_min");
        nMax = orDefault(nMax, "n_max");
        checkUnused = orDefault(checkUnused, "check_unused");
        maxAge = orDefault(maxAge, "max_age");
        queueMax = orDefault(queueMax, "queue_max");
        queueTimeout = orDefault(queueTimeout, "queue_timeout");
        requestTimeout = orDefault(requestTimeout, "request_timeout");
        startupTimeout = orDefault(startupTimeout, "startup_timeout");
        maxBodySize = orDefault(maxBodySize, "max_body_size");
        memoryBuffer = memoryBuffer == null ? DEFAULT_MEMORY_BUFFER : memoryBuffer;
        clientTimeout = orDefault(clientTimeout, "client_timeout");
        maxRequests = orDefault(maxRequests, "max_requests");
        maxRequestsJitter = orDefault(maxRequestsJitter, "max_requests_jitter");
        maxWorkerMemory = orDefault(maxWorkerMemory, "max_worker_memory");
        watch = orDefault(watch, "watch");
        preload = orDefault(preload, "preload");
        perPod = orDefault(perPod, "per_pod");
        resolveInterval = orDefault(resolveInterval, "resolve_interval");
        adminPort = orDefault(adminPort, "admin_port");
        accessLog = orDefault(accessLog, "access_log");
        maxSessions = orDefault(maxSessions, "max_sessions");

        if (!HOST.matcher(host).matches()) {
            throw new IllegalArgumentException("host must be an IP address or host name such as 127.0.0.1, not '"
                    + host + "'");
        }
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("port must be a whole number between 0 and 65535, not " + port);
        }
        if (adminPort != null && (adminPort < 0 || adminPort > 65535)) {
            throw new IllegalArgumentException("admin_port must be a whole number between 0 and 65535, not " + adminPort);
        }
        if (adminPort != null && adminPort != 0 && adminPort.equals(port)) {
            throw new IllegalArgumentException("admin_port (" + adminPort + ") must differ from port: the admin "
                    + "listener is never reachable through the main port");
        }
        AppConfig top = new AppConfig(worker, nMin, nMax, checkUnused, maxAge, queueMax, queueTimeout, requestTimeout,
                startupTimeout, maxRequests, maxRequestsJitter, maxWorkerMemory, watch, preload, maxSessions);
        checkApp("", top);
        atLeast("max_body_size", maxBodySize, 0);
        atLeast("memory_buffer", memoryBuffer, 0);
        positive("client_timeout", clientTimeout);
        atLeast("per_pod", perPod, 1);
        positive("resolve_interval", resolveInterval);
        if ((worker != null ? 1 : 0) + (upstream != null ? 1 : 0) + (routes != null ? 1 : 0) != 1) {
            throw new IllegalArgumentException("give exactly one of worker (local workers), upstream (service mode) "
                    + "and routes (several apps)");
        }
        if (routes != null) {
            routes = checkRoutes(routes, top);
        }
        if (watch && upstream != null) {
            throw new IllegalArgumentException("watch reloads local workers, and service mode has none");
        }
        if (preload && upstream != null) {
            throw new IllegalArgumentException("preload forks local workers, and service mode has none");
        }
        if (upstream != null) {
            URI uri;
            try {
                uri = new URI(upstream);
            } catch (URISyntaxException e) {
                uri = null;
            }
            if (uri == null || !"http".equals(uri.getScheme()) || uri.getHost() == null
                    || !(uri.getRawPath() == null || uri.getRawPath().isEmpty() || uri.getRawPath().equals("/"))) {
                throw new IllegalArgumentException("upstream must look like http://name:port, not '" + upstream + "'");
            }
        }
    }

    /** The per-pool rules, for the top level ({@code where} empty) and for each route ({@code routes./api.}). */
    private static void checkApp(String where, AppConfig app) {
        atLeast(where + "n_min", app.nMin(), 0);
        atLeast(where + "n_max", app.nMax(), 1);
        if (app.nMin() > app.nMax()) {
            throw new IllegalArgumentException(where + "n_min (" + app.nMin() + ") must not be larger than " + where
                    + "n_max (" + app.nMax() + ")");
        }
        positive(where + "check_unused", app.checkUnused());
        positive(where + "max_age", app.maxAge());
        atLeast(where + "queue_max", app.queueMax(), 0);
        positive(where + "queue_timeout", app.queueTimeout());
        positive(where + "request_timeout", app.requestTimeout());
        positive(where + "startup_timeout", app.startupTimeout());
        atLeast(where + "max_requests", app.maxRequests(), 0);
        atLeast(where + "max_requests_jitter", app.maxRequestsJitter(), 0);
        if (app.maxRequestsJitter() > 0 && app.maxRequests() == 0) {
            throw new IllegalArgumentException(where + "max_requests_jitter (" + app.maxRequestsJitter()
                    + ") needs " + where + "max_requests: it adds to that limit, and max_requests is 0 (off)");
        }
        atLeast(where + "max_worker_memory", app.maxWorkerMemory(), 0);
        atLeast(where + "max_sessions", app.maxSessions(), 1);
    }

    /** Routes by their prefix (a trailing slash dropped), each app complete and checked, in the order given. */
    private static Map<String, AppConfig> checkRoutes(Map<String, AppConfig> routes, AppConfig top) {
        if (routes.isEmpty()) {
            throw new IllegalArgumentException("routes must name at least one route, such as \"/api\"");
        }
        Map<String, AppConfig> checked = new LinkedHashMap<>();
        routes.forEach((given, app) -> {
            String prefix = given != null && given.length() > 1 && given.endsWith("/")
                    ? given.substring(0, given.length() - 1) : given;
            if (prefix == null || given.contains("//") || !PREFIX.matcher(prefix).matches() || prefix.contains("/./")
                    || prefix.contains("/../") || prefix.endsWith("/.") || prefix.endsWith("/..")) {
                throw new IllegalArgumentException("routes: '" + given + "' is not a path prefix: it must start with /, "
                        + "and hold path segments without %, ?, #, spaces, empty, . or .. segments (such as /api)");
            }
            String where = "routes." + prefix + ".";
            if (app == null || app.worker() == null) {
                throw new IllegalArgumentException(where + "path: what the route serves must be given");
            }
            if (checked.containsKey(prefix)) {
                throw new IllegalArgumentException("routes: '" + given + "' is given twice");
            }
            AppConfig complete = app.inheriting(top);
            checkApp(where, complete);
            checked.put(prefix, complete);
        });
        return Collections.unmodifiableMap(checked);
    }

    /** One app behind a path prefix ({@link #ROOT} for a single app). */
    public record Route(String prefix, AppConfig app) {
    }

    /**
     * The apps to serve, each complete: the routes, or the single app on {@link #ROOT} (with a
     * null worker in service mode).
     */
    List<Route> routesToServe() {
        if (routes == null) {
            return List.of(new Route(ROOT, new AppConfig(worker, nMin, nMax, checkUnused, maxAge, queueMax,
                    queueTimeout, requestTimeout, startupTimeout, maxRequests, maxRequestsJitter, maxWorkerMemory,
                    watch, preload, maxSessions)));
        }
        List<Route> out = new ArrayList<>();
        routes.forEach((prefix, app) -> out.add(new Route(prefix, app)));
        return out;
    }

    /** The defaults of every argument of {@code valve_run()}, by snake_case name, as a JSON object. */
    public static String defaultsJson() {
        return toJson(DEFAULTS);
    }

    /** The names of the user-facing arguments that have a default, in the order of {@code ?valve_run}. */
    static List<String> defaultNames() {
        return List.copyOf(DEFAULTS.keySet());
    }

    /** The default of one argument (null: none, as for admin_port), for the command line's options and help. */
    static Object defaultOf(String name) {
        if (!DEFAULTS.containsKey(name)) {
            throw new IllegalArgumentException("no default for " + name);
        }
        return DEFAULTS.get(name);
    }

    @SuppressWarnings("unchecked")
    private static <T> T orDefault(T value, String name) {
        return value != null ? value : (T) DEFAULTS.get(name);
    }

    private static void atLeast(String name, long value, long min) {
        if (value < min) {
            throw new IllegalArgumentException(name + " must be a whole number >= " + min + ", not " + value);
        }
    }

    private static void positive(String name, double value) {
        if (!(value > 0) || Double.isInfinite(value)) {
            throw new IllegalArgumentException(name + " must be a positive number of seconds, not " + number(value));
        }
    }

    /** 10.0 as {@code 10}, as a user would have typed it. */
    static String number(Object value) {
        if (value instanceof Double d && d == Math.rint(d) && !Double.isInfinite(d)) {
            return Long.toString(d.longValue());
        }
        return String.valueOf(value);
    }

    /**
     * Parses the JSON R sends; unknown fields are an error so a typo is never silently ignored.
     * With a {@code config} member, the config file it names is read first and the other members
     * are laid over it (R's explicit arguments win over the file).
     */
    static ValveConfig fromJson(String json) {
        String context = "invalid valve configuration: ";
        JsonNode tree;
        try {
            tree = JSON.readTree(json);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("invalid valve configuration: " + e.getOriginalMessage(), e);
        }
        if (!(tree instanceof ObjectNode members)) {
            throw new IllegalArgumentException("invalid valve configuration: not a JSON object");
        }
        if (members.has(ConfigFile.KEY)) {
            Path file = Path.of(members.remove(ConfigFile.KEY).asText());
            JsonNode defaults = members.remove(ConfigFile.WORKER_DEFAULTS_KEY);
            try {
                return fromTree(ConfigFile.read(file, defaults == null ? null
                        : JSON.treeToValue(defaults, ConfigFile.WorkerDefaults.class), members), context);
            } catch (JsonProcessingException e) {
                throw new IllegalArgumentException("invalid valve configuration: " + e.getOriginalMessage(), e);
            }
        }
        return fromTree(members, context);
    }

    /** A configuration from its members by snake_case name: a config file, the command line's flags. */
    static ValveConfig fromTree(ObjectNode members) {
        return fromTree(members, "");
    }

    /** @param context what a refusal's message starts with */
    private static ValveConfig fromTree(ObjectNode members, String context) {
        try {
            return JSON.treeToValue(members, ValveConfig.class);
        } catch (JsonProcessingException e) {
            if (e.getCause() instanceof IllegalArgumentException rule) {
                throw new IllegalArgumentException(context + rule.getMessage(), e);
            }
            throw new IllegalArgumentException("invalid valve configuration: " + e.getOriginalMessage(), e);
        }
    }

    /** A configuration tree to add members to, by snake_case name. */
    static ObjectNode newTree() {
        return JSON.createObjectNode();
    }

    /** A value as a tree node, for {@link #newTree()}'s members. */
    static JsonNode toTree(Object value) {
        return JSON.valueToTree(value);
    }

    static String toJson(Object value) {
        try {
            return JSON.writeValueAsString(value);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    static PoolConfig pool(AppConfig app) {
        return new PoolConfig(app.nMin(), app.nMax(), seconds(app.maxAge()), seconds(app.checkUnused()),
                app.queueMax(), seconds(app.queueTimeout()), new Recycling(app.maxRequests(), app.maxRequestsJitter(),
                app.maxWorkerMemory() * 1024L * 1024L), servesSessions(app) ? app.maxSessions() : 0);
    }

    /** Whether an app's workers serve a Shiny app's sticky sessions rather than one request each at a time. */
    private static boolean servesSessions(AppConfig app) {
        return app.worker() != null && app.worker().servesSessions();
    }

    /**
     * @param names what its workers are called before their number: empty for a single app
     * @throws IllegalArgumentException when the worker script cannot be found beside the jars
     */
    static ProcessLauncher.Settings launcher(AppConfig app, String secret, String names) {
        return new ProcessLauncher.Settings(app.worker(), WorkerProtocol.installedScript(),
                seconds(app.startupTimeout()), secret, app.preload(), names);
    }

    /** Request heads above this get 431 from valve; Helidon's own parser limit is set well above it. */
    static final int MAX_HEADER_BYTES = 32 * 1024;
    /** Request lines above this get 414 from Helidon. */
    static final int MAX_REQUEST_LINE_BYTES = 4 * 1024;

    ProxyHandler.Settings proxy(Route route, Path spoolDirectory, String secret) {
        WorkerSpec served = route.app().worker();
        return new ProxyHandler.Settings(maxBodySize, memoryBuffer, seconds(route.app().requestTimeout()),
                spoolDirectory, MAX_HEADER_BYTES, secret, served == null ? null : WorkerProtocol.secretHeader(served),
                servesSessions(route.app()), route.prefix());
    }

    ServiceDiscovery.Settings service() {
        return new ServiceDiscovery.Settings(URI.create(upstream), perPod, seconds(resolveInterval));
    }

    static Duration seconds(double value) {
        return Duration.ofNanos(Math.round(value * 1e9));
    }
}
