package dev.valve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import dev.valve.worker.WorkerSpec;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The configuration as R sends it: every default in one place, every rule said in words. */
class ValveConfigTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private String json(Map<String, ?> members) throws Exception {
        Map<String, Object> all = new LinkedHashMap<>();
        all.put("worker", Map.of("mode", "dir", "path", dir.toString()));
        all.putAll(members);
        return JSON.writeValueAsString(all);
    }

    private String refusal(Map<String, ?> members) throws Exception {
        String json = json(members);
        return assertThrows(IllegalArgumentException.class, () -> ValveConfig.fromJson(json)).getMessage();
    }

    @Test
    void defaultsJsonNamesEveryArgumentAndIsWhatAnEmptyConfigurationGets() throws Exception {
        @SuppressWarnings("unchecked")
        Map<String, Object> defaults = JSON.readValue(ValveConfig.defaultsJson(), Map.class);
        assertEquals(List.of("host", "port", "n_min", "n_max", "check_unused", "max_age", "queue_max", "queue_timeout",
                "request_timeout", "startup_timeout", "max_body_size", "client_timeout", "per_pod",
                "resolve_interval", "max_requests", "max_requests_jitter", "max_worker_memory", "watch", "preload",
                "admin_port", "access_log", "max_sessions"),
                List.copyOf(defaults.keySet()));
        assertEquals(268435456, ((Number) defaults.get("max_body_size")).longValue());

        @SuppressWarnings("unchecked")
        Map<String, Object> actual = JSON.readValue(ValveConfig.toJson(ValveConfig.fromJson(json(Map.of()))), Map.class);
        for (Map.Entry<String, Object> entry : defaults.entrySet()) {
            if (entry.getValue() instanceof Number expected) {
                assertEquals(expected.doubleValue(), ((Number) actual.get(entry.getKey())).doubleValue(), entry.getKey());
            } else {
                assertEquals(entry.getValue(), actual.get(entry.getKey()), entry.getKey());
            }
        }
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "n_max    | 0    | n_max must be a whole number >= 1, not 0",
        "n_min    | -1   | n_min must be a whole number >= 0, not -1",
        "queue_max| -1   | queue_max must be a whole number >= 0, not -1",
        "port     | -1   | port must be a whole number between 0 and 65535, not -1",
        "max_age  | 0    | max_age must be a positive number of seconds, not 0",
        "client_timeout | -2.5 | client_timeout must be a positive number of seconds, not -2.5",
        "max_body_size  | -1   | max_body_size must be a whole number >= 0, not -1",
        "per_pod  | 0    | per_pod must be a whole number >= 1, not 0",
        "max_requests | -1 | max_requests must be a whole number >= 0, not -1",
        "max_worker_memory | -5 | max_worker_memory must be a whole number >= 0, not -5",
        "admin_port | 70000 | admin_port must be a whole number between 0 and 65535, not 70000"})
    void eachRuleIsSaidInWords(String name, double value, String message) throws Exception {
        Object number = value == Math.rint(value) ? (Object) (long) value : (Object) value;
        assertEquals("invalid valve configuration: " + message, refusal(Map.of(name, number)));
    }

    @Test
    void rulesBetweenMembersAreSaidInWords() throws Exception {
        assertEquals("invalid valve configuration: n_min (5) must not be larger than n_max (2)",
                refusal(Map.of("n_min", 5, "n_max", 2)));
        assertTrue(refusal(Map.of("max_requests_jitter", 10)).contains("max_requests_jitter (10) needs max_requests"));
        Map<String, Object> watchingPods = new LinkedHashMap<>();
        watchingPods.put("worker", null);
        watchingPods.put("upstream", "http://svc:80");
        watchingPods.put("watch", true);
        assertTrue(refusal(watchingPods).contains("watch reloads local workers, and service mode has none"));
        assertTrue(refusal(Map.of("port", 8000, "admin_port", 8000)).contains("admin_port (8000) must differ from port"));
        assertTrue(refusal(Map.of("host", "bad host")).contains("host must be an IP address or host name"));
        assertTrue(refusal(Map.of("upstream", "http://svc:80")).contains("exactly one of worker"));
        assertTrue(refusal(Map.of("nmax", 2)).contains("nmax"), "an unknown member is refused by name");
        String service = "{\"upstream\": \"ftp://svc:80\"}";
        assertTrue(assertThrows(IllegalArgumentException.class, () -> ValveConfig.fromJson(service)).getMessage()
                .contains("upstream must look like http://name:port, not 'ftp://svc:80'"));
        assertEquals("http://svc:80", ValveConfig.fromJson("{\"upstream\": \"http://svc:80\"}").upstream());
    }

    @Test
    void theWorkerMemberIsCheckedToo() throws Exception {
        assertTrue(refusal(Map.of("worker", Map.of("mode", "rds", "path", dir.toString())))
                .contains("worker.mode must be one of file, dir, shiny, api, not rds"));
        assertTrue(refusal(Map.of("worker", Map.of("mode", "file", "path", "plumber.R")))
                .contains("worker.path must be an absolute path, not plumber.R"));
        assertTrue(refusal(Map.of("worker", Map.of("mode", "file", "path", dir.resolve("none.R").toString())))
                .contains("the plumber file " + dir.resolve("none.R") + " does not exist"));
        Path rds = Files.writeString(dir.resolve("api.rds"), "x");
        assertTrue(refusal(Map.of("worker", Map.of("mode", "api", "path", rds.toString())))
                .contains("worker.directory must be given in api mode"));

        WorkerSpec worker = ValveConfig.fromJson(json(Map.of("worker", Map.of("mode", "api", "path", rds.toString(),
                "rscript", "/opt/R/bin/Rscript", "lib_paths", List.of("/lib/a"), "run_args", rds.toString(),
                "directory", dir.toString())))).worker();
        assertEquals(List.of("/lib/a"), worker.libPaths());
        assertEquals(dir, worker.workingDirectory());
        assertEquals(List.of(rds, rds), worker.temporaryFiles());
        assertEquals(WorkerSpec.DEFAULT_RSCRIPT, ValveConfig.fromJson(json(Map.of())).worker().rscript());
    }
}
