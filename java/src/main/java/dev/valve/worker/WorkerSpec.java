package dev.valve.worker;

import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * What local workers serve and with which R: the {@code worker} member of the configuration R
 * sends (snake_case JSON), or what the command line builds from its flags.
 *
 * @param mode      {@code file} (a plumber file), {@code dir} (a directory served like
 *                  {@code plumber::plumb(dir =)}, or as a Shiny app when it holds one and no
 *                  plumber files: see {@link #directoryMode}), {@code shiny} (a Shiny app's
 *                  directory, served with {@code shiny::runApp()}) or {@code api} (an RDS file
 *                  holding a function that returns a router)
 * @param path      absolute path of that file, directory or RDS file
 * @param rscript   the Rscript that runs workers; {@value #DEFAULT_RSCRIPT} (from the PATH) if absent
 * @param libPaths  R library paths for the workers, first first; none keeps the engine's {@code R_LIBS}
 * @param runArgs   absolute path of an RDS file holding a list of {@code plumber::pr_run()}
 *                  arguments, or null for none
 * @param directory working directory of the workers in {@code api} mode (required there); the
 *                  other modes run in the file's or the directory's own directory
 */
public record WorkerSpec(String mode, String path, String rscript, List<String> libPaths, String runArgs,
                         String directory) {
    public static final String FILE = "file";
    public static final String DIR = "dir";
    public static final String API = "api";
    public static final String SHINY = "shiny";
    public static final String DEFAULT_RSCRIPT = "Rscript";

    public WorkerSpec {
        if (!List.of(FILE, DIR, SHINY, API).contains(mode)) {
            throw new IllegalArgumentException("worker.mode must be one of file, dir, shiny, api, not " + mode);
        }
        Path target = absolute("worker.path", path);
        boolean found = switch (mode) {
            case DIR, SHINY -> Files.isDirectory(target);
            default -> Files.isRegularFile(target) && Files.isReadable(target);
        };
        if (!found) {
            throw new IllegalArgumentException(switch (mode) {
                case FILE -> "the plumber file " + path + " does not exist or is not readable";
                case DIR, SHINY -> path + " is not a directory";
                default -> "the api function's file " + path + " does not exist or is not readable";
            });
        }
        if (DIR.equals(mode)) {
            mode = directoryMode(target);
        }
        if (SHINY.equals(mode) && !isShinyApp(target)) {
            throw new IllegalArgumentException(path + " is not a Shiny app: it has neither an app.R nor a ui.R and a server.R");
        }
        rscript = rscript == null ? DEFAULT_RSCRIPT : rscript;
        if (rscript.isBlank()) {
            throw new IllegalArgumentException("worker.rscript must name the Rscript program, not ''");
        }
        libPaths = libPaths == null ? List.of() : List.copyOf(libPaths);
        if (runArgs != null && !Files.isReadable(absolute("worker.run_args", runArgs))) {
            throw new IllegalArgumentException("worker.run_args " + runArgs + " does not exist or is not readable");
        }
        if (API.equals(mode) != (directory != null)) {
            throw new IllegalArgumentException("worker.directory must be given in api mode, and only there");
        }
        if (directory != null && !Files.isDirectory(absolute("worker.directory", directory))) {
            throw new IllegalArgumentException("worker.directory " + directory + " is not a directory");
        }
    }

    /** A plumber file or a directory, as the command line serves them. */
    public static WorkerSpec of(String mode, Path path, String rscript) {
        return new WorkerSpec(mode, path.toAbsolutePath().normalize().toString(), rscript, null, null, null);
    }

    /**
     * How a directory is served, as Faucet decides: a plumber API when it has an
     * {@code entrypoint.R} or a {@code plumber.R}, else a Shiny app when it has an {@code app.R}
     * or a {@code ui.R} and a {@code server.R}, else a plumber directory (whose error then says
     * what is missing).
     */
    public static String directoryMode(Path directory) {
        boolean plumber = Files.isRegularFile(directory.resolve("entrypoint.R"))
                || Files.isRegularFile(directory.resolve("plumber.R"));
        return !plumber && isShinyApp(directory) ? SHINY : DIR;
    }

    private static boolean isShinyApp(Path directory) {
        return Files.isRegularFile(directory.resolve("app.R"))
                || Files.isRegularFile(directory.resolve("ui.R")) && Files.isRegularFile(directory.resolve("server.R"));
    }

    /** Whether workers serve Shiny sessions (sticky, many per worker) rather than one request at a time. */
    public boolean servesSessions() {
        return SHINY.equals(mode);
    }

    /** Where the workers run: the plumber file's directory, the served directory, or {@link #directory()}. */
    public Path workingDirectory() {
        return switch (mode) {
            case FILE -> Path.of(path).getParent();
            case DIR, SHINY -> Path.of(path);
            default -> Path.of(directory);
        };
    }

    /**
     * The RDS files R wrote for this run alone ({@link #runArgs()} and, in {@code api} mode,
     * {@link #path()}): the engine deletes them when it stops. A served file or directory is never one.
     */
    public List<Path> temporaryFiles() {
        List<Path> files = new ArrayList<>();
        if (runArgs != null) {
            files.add(Path.of(runArgs));
        }
        if (API.equals(mode)) {
            files.add(Path.of(path));
        }
        return files;
    }

    private static Path absolute(String name, String value) {
        try {
            if (value != null && Path.of(value).isAbsolute()) {
                return Path.of(value);
            }
        } catch (InvalidPathException e) {
            // Reported below, like any other unusable path.
        }
        throw new IllegalArgumentException(name + " must be an absolute path, not " + value);
    }
}
