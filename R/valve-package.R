#' @keywords internal
"_PACKAGE"

.onLoad <- function(libname, pkgname) {
  # A class loader of our own keeps our Helidon and Jackson apart from other rJava packages'.
  # Loading only registers the jars: a JVM older than 21 is reported when valve starts, not here.
  rJava::.jpackage(pkgname, lib.loc = libname, own.loader = TRUE)
}
