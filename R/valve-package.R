#' @keywords internal
"_PACKAGE"

# Workers run inst/worker/worker.R, which needs plumber and later in the same library: importing
# one function of each records that need where R CMD check can see it.
#' @importFrom later later
#' @importFrom plumber pr
NULL

.onLoad <- function(libname, pkgname) {
  # A class loader of our own keeps our Helidon and Jackson apart from other rJava packages'.
  # Loading only registers the jars: a JVM older than 21 is reported when valve starts, not here.
  rJava::.jpackage(pkgname, lib.loc = libname, own.loader = TRUE)
}
