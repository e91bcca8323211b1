package dev.valve;

import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.json.JsonMapper;

import dev.valve.pool.PoolConfig;
import dev.valve.pool.ProcessLauncher;
import dev.valve.proxy.ProxyHandler;
import dev.valve.service.ServiceDiscovery;

/**
 * Everything the engine needs, as one value. R builds it as JSON with snake_case names; a
 * missing field takes the default documented here and in {@code ?valve_run}. Durations are
 * seconds, sizes bytes.
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
 * @param upstream       service mode: {@code http://name:port} of a (headless) service whose
 *                       addresses are the pods; no local workers then
 * @param perPod         service mode: requests one pod may have in flight at once
 * @param resolveInterval service mode: seconds between resolutions of the name
 * @param worker         how to spawn one worker; null in service mode
 */
public record ValveConfig(String host, Integer port, Integer nMin, Integer nMax,
                          Double checkUnused, Double maxAge, Integer queueMax, Double queueTimeout,
                          Double requestTimeout, Double startupTimeout, Long maxBodySize,
                          Integer memoryBuffer, Double clientTimeout, String upstream, Integer perPod,
                          Double resolveInterval, Worker worker) {

    /**
     * @param command     program and arguments
     * @param environment extra environment variables
     * @param directory   working directory
     */
    public record Worker(List<String> command, Map<String, String> environment, String directory) {
        public Worker {
            if (command == null || command.isEmpty()) {
                throw new IllegalArgumentException("worker.command must name a program to run");
            }
            command = List.copyOf(command);
            environment = environment == null ? Map.of() : Map.copyOf(environment);
            directory = directory == null ? "." : directory;
        }
    }

    private static final ObjectMapper JSON = JsonMapper.builder()
            .propertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .build();

    public ValveConfig {
        host = host == null ? "127.0.0.1" : host;
        port = port == null ? 3000 : port;
        nMin = nMin == null ? 1 : nMin;
        nMax = nMax == null ? 3 : nMax;
        checkUnused = checkUnused == null ? 10.0 : checkUnused;
        maxAge = maxAge == null ? 300.0 : maxAge;
        queueMax = queueMax == null ? 1000 : queueMax;
        queueTimeout = queueTimeout == null ? 60.0 : queueTimeout;
        requestTimeout = requestTimeout == null ? 300.0 : requestTimeout;
        startupTimeout = startupTimeout == null ? 60.0 : startupTimeout;
        maxBodySize = maxBodySize == null ? 256L * 1024 * 1024 : maxBodySize;
        memoryBuffer = memoryBuffer == null ? 1024 * 1024 : memoryBuffer;
        clientTimeout = clientTimeout == null ? 30.0 : clientTimeout;
        perPod = perPod == null ? 1 : perPod;
        resolveInterval = resolveInterval == null ? 5.0 : resolveInterval;
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("port must be between 0 and 65535, got " + port);
        }
        if (!(clientTimeout > 0)) {
            throw new IllegalArgumentException("client_timeout must be > 0, got " + clientTimeout);
        }
        if (maxBodySize < 0 || memoryBuffer < 0) {
            throw new IllegalArgumentException("max_body_size and memory_buffer must be >= 0");
        }
        if ((worker == null) == (upstream == null)) {
            throw new IllegalArgumentException("give exactly one of worker (local workers) and upstream (service mode)");
        }
        if (!(resolveInterval > 0)) {
            throw new IllegalArgumentException("resolve_interval must be > 0, got " + resolveInterval);
        }
    }

    /** Parses the JSON R sends; unknown fields are an error so a typo is never silently ignored. */
    static ValveConfig fromJson(String json) {
        try {
            return JSON.readValue(json, ValveConfig.class);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            Throwable cause = e.getCause() instanceof IllegalArgumentException iae ? iae : e;
            throw new IllegalArgumentException("invalid valve configuration: " + cause.getMessage(), e);
        }
    }

    static String toJson(Object value) {
        try {
            return JSON.writeValueAsString(value);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    PoolConfig pool() {
        return new PoolConfig(nMin, nMax, seconds(maxAge), seconds(checkUnused), queueMax, seconds(queueTimeout));
    }

    ProcessLauncher.Settings launcher(String secret) {
        return new ProcessLauncher.Settings(worker.command(), worker.environment(),
                Path.of(worker.directory()), seconds(startupTimeout), "/__valve__/ready", secret);
    }

    /** Request heads above this get 431 from valve; Helidon's own parser limit is set well above it. */
    static final int MAX_HEADER_BYTES = 32 * 1024;
    /** Request lines above this get 414 from Helidon. */
    static final int MAX_REQUEST_LINE_BYTES = 4 * 1024;

    ProxyHandler.Settings proxy(Path spoolDirectory, String secret) {
        return new ProxyHandler.Settings(maxBodySize, memoryBuffer, seconds(requestTimeout), spoolDirectory,
                MAX_HEADER_BYTES, secret);
    }

    ServiceDiscovery.Settings service() {
        try {
            return new ServiceDiscovery.Settings(URI.create(upstream), perPod, seconds(resolveInterval));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("invalid upstream " + upstream + ": " + e.getMessage(), e);
        }
    }

    static Duration seconds(double value) {
        return Duration.ofNanos(Math.round(value * 1e9));
    }
}
