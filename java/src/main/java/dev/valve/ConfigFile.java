package dev.valve;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;

import dev.valve.worker.WorkerSpec;

/**
 * The config file ({@code valve --config valve.yml}, {@code valve_start(config = "valve.yml")}):
 * YAML with the arguments of {@code valve_start()} by their R names, and {@code routes}, each
 * a path (a plumber file or a directory) or a mapping of {@code path} and that app's own settings:
 *
 * <pre>
 * port: 8000
 * n_max: 2
 * routes:
 *   /api: api/plumber.R
 *   /admin:
 *     path: admin/
 *     n_max: 4
 * </pre>
 *
 * It becomes the same tree R sends as JSON, so that {@link ValveConfig} applies every default and
 * range rule; here each key is checked to be known and of the right type, so that a mistake is
 * reported by its key. Relative paths are taken from the file's own directory.
 */
final class ConfigFile {
    /** The member of R's JSON that names a config file. */
    static final String KEY = "config";
    /** The member of R's JSON that says with which R the file's workers run. */
    static final String WORKER_DEFAULTS_KEY = "worker_defaults";
    /** The members that say what to serve: the file's, or those given with it, never both. */
    private static final List<String> SOURCES = List.of("worker", "upstream", "routes");

    private static final YAMLMapper YAML = new YAMLMapper();

    private ConfigFile() {
    }

    /**
     * With which R the file's workers run, as R's own {@code worker} spec has it.
     *
     * @param rscript  the Rscript program; null for {@value WorkerSpec#DEFAULT_RSCRIPT}
     * @param libPaths R library paths for the workers; null for the engine's {@code R_LIBS}
     * @param runArgs  an RDS file of {@code plumber::pr_run()} arguments, or null
     */
    record WorkerDefaults(String rscript, List<String> libPaths, String runArgs) {
    }

    /**
     * The file as a configuration tree, with {@code overrides} (explicit flags or R arguments,
     * in the same snake_case shape) laid over it.
     *
     * @throws IllegalArgumentException naming the file and the key, for a file that cannot be
     *                                  read, is not YAML, or holds an unknown key or a value of the wrong type
     */
    static ObjectNode read(Path file, WorkerDefaults defaults, ObjectNode overrides) {
        if (!Files.isRegularFile(file) || !Files.isReadable(file)) {
            throw new IllegalArgumentException("the config file " + file + " does not exist or is not readable");
        }
        JsonNode root;
        try {
            // A short read of a small file, once, before anything starts.
            root = YAML.readTree(Files.readString(file));
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(file + " is not valid YAML: " + e.getOriginalMessage().replaceAll("\\s+", " ")
                    + (e.getLocation() == null ? "" : " (line " + e.getLocation().getLineNr() + ")"), e);
        } catch (IOException e) {
            throw new IllegalArgumentException("the config file " + file + " cannot be read: " + e.getMessage(), e);
        }
        ObjectNode tree = JsonNodeFactory.instance.objectNode();
        if (root != null && !root.isMissingNode() && !root.isNull()) {
            if (!root.isObject()) {
                throw new IllegalArgumentException(file + ": must be a mapping of settings (key: value), not "
                        + describe(root));
            }
            Path base = file.toAbsolutePath().getParent();
            new Reader(file, base, defaults).top((ObjectNode) root, tree);
        }
        if (overrides != null) {
            if (SOURCES.stream().anyMatch(overrides::has) && SOURCES.stream().anyMatch(tree::has)) {
                throw new IllegalArgumentException(file + " says what to serve (" + String.join(", ",
                        SOURCES.stream().filter(tree::has).toList()) + "), and so do the options or arguments "
                        + "given with it: say it in one place");
            }
            tree.setAll(overrides);
        }
        return tree;
    }

    /** Turns the file's keys into {@link ValveConfig}'s members, checking each on the way. */
    private record Reader(Path file, Path base, WorkerDefaults defaults) {
        void top(ObjectNode root, ObjectNode out) {
            Iterator<Map.Entry<String, JsonNode>> fields = root.fields();
            while (fields.hasNext()) {
                Map.Entry<String, JsonNode> field = fields.next();
                String key = field.getKey();
                JsonNode value = field.getValue();
                switch (key) {
                    case "plumber_file", "dir" -> {
                        if (out.has("worker")) {
                            throw fail("give only one of plumber_file and dir");
                        }
                        out.set("worker", worker(key, text(key, value), key.equals("dir")));
                    }
                    case "upstream" -> out.put(key, text(key, value));
                    case "routes" -> out.set(key, routes(value));
                    default -> {
                        if (!ValveConfigKeys.TOP.contains(key)) {
                            throw fail("unknown key '" + key + "' (known: " + String.join(", ", ValveConfigKeys.all())
                                    + ")");
                        }
                        out.set(key, typed(key, key, value));
                    }
                }
            }
            if (out.has("routes") && (out.has("worker") || out.has("upstream"))) {
                throw fail("give routes, or one app with plumber_file, dir or upstream, not both");
            }
        }

        private ObjectNode routes(JsonNode routes) {
            if (!routes.isObject()) {
                throw fail("routes must be a mapping of path prefixes to apps (/api: api/plumber.R), not "
                        + describe(routes));
            }
            ObjectNode out = JsonNodeFactory.instance.objectNode();
            Iterator<Map.Entry<String, JsonNode>> entries = routes.fields();
            while (entries.hasNext()) {
                Map.Entry<String, JsonNode> entry = entries.next();
                String where = "routes." + entry.getKey();
                JsonNode app = entry.getValue();
                ObjectNode member = JsonNodeFactory.instance.objectNode();
                if (app.isTextual()) {
                    member.set("worker", worker(where, app.asText(), null));
                } else if (app.isObject()) {
                    Iterator<Map.Entry<String, JsonNode>> fields = app.fields();
                    while (fields.hasNext()) {
                        Map.Entry<String, JsonNode> field = fields.next();
                        String key = field.getKey();
                        if (key.equals("path")) {
                            member.set("worker", worker(where + ".path", text(where + ".path", field.getValue()), null));
                        } else if (AppConfig.KEYS.contains(key)) {
                            member.set(key, typed(key, where + "." + key, field.getValue()));
                        } else {
                            throw fail("unknown key '" + key + "' in " + where + " (known: path, "
                                    + String.join(", ", AppConfig.KEYS) + ")");
                        }
                    }
                    if (!member.has("worker")) {
                        throw fail(where + " needs a path: the plumber file or directory it serves");
                    }
                } else {
                    throw fail(where + " must be a path or a mapping with a path, not " + describe(app));
                }
                out.set(entry.getKey(), member);
            }
            return out;
        }

        /** @param directory whether the path must be a directory; null: a directory or a file, as found */
        private JsonNode worker(String where, String path, Boolean directory) {
            Path target = base.resolve(path).normalize();
            boolean isDirectory = Files.isDirectory(target);
            if (!isDirectory && !Files.isRegularFile(target) || directory != null && directory != isDirectory) {
                throw fail(where + ": " + target + (directory == null ? " is neither a file nor a directory"
                        : directory ? " is not a directory" : " is not a file"));
            }
            ObjectNode spec = JsonNodeFactory.instance.objectNode();
            spec.put("mode", isDirectory ? WorkerSpec.DIR : WorkerSpec.FILE);
            spec.put("path", target.toString());
            if (defaults != null) {
                spec.put("rscript", defaults.rscript());
                if (defaults.libPaths() != null) {
                    defaults.libPaths().forEach(spec.putArray("lib_paths")::add);
                }
                spec.put("run_args", defaults.runArgs());
            }
            return spec;
        }

        private String text(String where, JsonNode value) {
            if (!value.isTextual() || value.asText().isEmpty()) {
                throw fail(where + " must be a path, not " + describe(value));
            }
            return value.asText();
        }

        /** A setting's value, checked against the type of its default. */
        private JsonNode typed(String key, String where, JsonNode value) {
            String wanted = ValveConfigKeys.kind(key);
            boolean ok = switch (wanted) {
                case ValveConfigKeys.WHOLE -> value.isIntegralNumber() && value.canConvertToLong();
                case ValveConfigKeys.NUMBER -> value.isNumber();
                case ValveConfigKeys.FLAG -> value.isBoolean();
                default -> value.isTextual();
            };
            if (!ok) {
                throw fail(where + " must be " + wanted + ", not " + describe(value));
            }
            return value;
        }

        private IllegalArgumentException fail(String message) {
            return new IllegalArgumentException(file + ": " + message);
        }
    }

    private static String describe(JsonNode value) {
        if (value.isTextual()) {
            return "'" + value.asText() + "'";
        }
        if (value.isObject()) {
            return "a mapping";
        }
        if (value.isArray()) {
            return "a list";
        }
        return value.isNull() ? "empty" : value.toString();
    }

    /** The keys of {@link ValveConfig} a file may set, and their types, from its defaults. */
    static final class ValveConfigKeys {
        static final String WHOLE = "a whole number";
        static final String NUMBER = "a number";
        static final String FLAG = "true or false";
        static final String TEXT = "a string";
        /** Every key with a default, less those the file names otherwise. */
        static final List<String> TOP = ValveConfig.defaultNames();

        private ValveConfigKeys() {
        }

        static List<String> all() {
            List<String> all = new ArrayList<>(TOP);
            all.addAll(List.of("plumber_file", "dir", "upstream", "routes"));
            return all;
        }

        static String kind(String key) {
            // admin_port's default is null (none): it is a port when given.
            Object fallback = key.equals("admin_port") ? 0 : ValveConfig.defaultOf(key);
            return switch (fallback) {
                case Integer i -> WHOLE;
                case Long l -> WHOLE;
                case Double d -> NUMBER;
                case Boolean b -> FLAG;
                default -> TEXT;
            };
        }
    }
}
