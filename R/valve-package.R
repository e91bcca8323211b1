#' @keywords internal
"_PACKAGE"

# Loading valve does no work: no JVM, no rJava, no plumber. The JVM starts and valve's jars are
# registered on the first engine call (engine_init() in R/engine.R), and only workers load
# plumber and later (worker_packages() checks that they are installed).

# valve's own rJava class loader, which keeps our Helidon and Jackson apart from other rJava
# packages'. rJava::.jpackage(own.loader = TRUE) sets it when the engine is first used; the
# binding exists from the start because a loaded namespace takes no new ones.
.rJava.class.loader <- NULL
