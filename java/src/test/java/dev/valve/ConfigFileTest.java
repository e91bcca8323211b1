package dev.valve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import dev.valve.worker.WorkerSpec;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The config file and the command line's --config: the same configuration as R's, checked by key. */
class ConfigFileTest {
    @TempDir
    Path root;

    private Path write(String yaml) throws Exception {
        Files.createDirectories(root.resolve("api"));
        Files.writeString(root.resolve("api").resolve("plumber.R"), "#* @get /\nfunction() 1\n");
        Files.createDirectories(root.resolve("admin"));
        return Files.writeString(root.resolve("valve.yml"), yaml);
    }

    /** As the command line reads {@code --config file} and {@code flags}. */
    private ValveConfig read(Path file, Map<String, String> flags) {
        List<String> args = new ArrayList<>(List.of("--config", file.toString()));
        flags.forEach((flag, value) -> args.addAll(List.of(flag, value)));
        Map<String, String> given = Main.given(args.toArray(String[]::new), Map.of());
        return Main.configOf(Main.parse(args.toArray(String[]::new), Map.of()), given.keySet());
    }

    @Test
    void routesTakeTheTopLevelSettingsTheyLeaveUnsetAndPathsFromTheFilesDirectory() throws Exception {
        Path file = write("""
                port: 8000
                n_max: 2
                request_timeout: 30
                routes:
                  /api: api/plumber.R
                  /admin/:
                    path: admin
                    n_max: 4
                    watch: true
                  /: api/plumber.R
                """);
        ValveConfig config = read(file, Map.of());
        assertEquals(8000, config.port());
        List<ValveConfig.Route> routes = config.routesToServe();
        assertEquals(List.of("/api", "/admin", "/"), routes.stream().map(ValveConfig.Route::prefix).toList());
        AppConfig api = routes.get(0).app();
        assertEquals(WorkerSpec.FILE, api.worker().mode());
        assertEquals(root.resolve("api/plumber.R").toString(), api.worker().path());
        assertEquals(2, api.nMax());
        assertEquals(30.0, api.requestTimeout());
        assertEquals(false, api.watch());
        AppConfig admin = routes.get(1).app();
        assertEquals(WorkerSpec.DIR, admin.worker().mode());
        assertEquals(4, admin.nMax());
        assertEquals(true, admin.watch());
        assertEquals(1, admin.nMin(), "the default");
        assertNull(config.worker());
    }

    @Test
    void optionsGivenOverrideTheFileAndTheDefaultsDoNot() throws Exception {
        Path file = write("""
                port: 8000
                n_max: 2
                routes:
                  /api: api/plumber.R
                """);
        ValveConfig config = read(file, Map.of("-n", "5"));
        assertEquals(8000, config.port(), "the file's, not the flag's default");
        assertEquals(5, config.routesToServe().get(0).app().nMax(), "the flag's, passed on to the route");
        // What to serve is said in one place.
        IllegalArgumentException twice = assertThrows(IllegalArgumentException.class,
                () -> read(file, Map.of("-f", root.resolve("api/plumber.R").toString())));
        assertTrue(twice.getMessage().contains("says what to serve (routes), and so do the options"),
                twice.getMessage());
        // Without one in the file, an option says it.
        Path settingsOnly = write("n_max: 2\n");
        ValveConfig single = read(settingsOnly, Map.of("--dir", root.resolve("admin").toString()));
        assertEquals(WorkerSpec.DIR, single.worker().mode());
        assertEquals(2, single.nMax());
    }

    @Test
    void aFileWithoutRoutesServesOneApp() throws Exception {
        Path file = write("dir: admin\nn_min: 0\n");
        ValveConfig config = read(file, Map.of());
        assertEquals(WorkerSpec.DIR, config.worker().mode());
        assertEquals(0, config.nMin());
    }

    @Test
    void rJsonNamesTheFileAndItsOwnArgumentsWin() throws Exception {
        Path file = write("port: 8000\nrouting: 1\n");
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class,
                () -> ValveConfig.fromJson("{\"config\": \"" + file + "\"}"));
        assertTrue(unknown.getMessage().contains("unknown key 'routing'"), unknown.getMessage());

        write("port: 8000\nn_max: 2\nroutes:\n  /api: api/plumber.R\n");
        ValveConfig config = ValveConfig.fromJson("{\"config\": \"" + file + "\", \"port\": 0, "
                + "\"worker_defaults\": {\"rscript\": \"/usr/bin/Rscript\", \"lib_paths\": [\"/lib/a\"]}}");
        assertEquals(0, config.port());
        AppConfig api = config.routesToServe().get(0).app();
        assertEquals("/usr/bin/Rscript", api.worker().rscript());
        assertEquals(List.of("/lib/a"), api.worker().libPaths());
    }

    @Test
    void prefixesAreCheckedAndNormalised() throws Exception {
        for (String bad : new String[] {"api", "/a//b", "/a b", "/a?b", "/a/../b", "/a%2Fb", "//"}) {
            Path file = write("routes:\n  '" + bad + "': api/plumber.R\n");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> read(file, Map.of()),
                    bad);
            assertTrue(e.getMessage().contains("is not a path prefix"), e.getMessage());
        }
        Path twice = write("routes:\n  /api: api/plumber.R\n  /api/: admin\n");
        assertTrue(assertThrows(IllegalArgumentException.class, () -> read(twice, Map.of())).getMessage()
                .contains("given twice"));
        Path both = write("plumber_file: api/plumber.R\nroutes:\n  /api: api/plumber.R\n");
        assertTrue(assertThrows(IllegalArgumentException.class, () -> read(both, Map.of())).getMessage()
                .contains("not both"));
    }
}
