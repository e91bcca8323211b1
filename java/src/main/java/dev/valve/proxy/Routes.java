package dev.valve.proxy;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;

import dev.valve.observe.Observer;

import io.helidon.http.HeaderName;
import io.helidon.http.HeaderNames;
import io.helidon.http.Status;
import io.helidon.webserver.http.Handler;
import io.helidon.webserver.http.ServerRequest;
import io.helidon.webserver.http.ServerResponse;

/**
 * Several apps behind one port, as Faucet's router and Posit Connect serve them: each request
 * goes to the app of the longest path prefix that matches it, whole segments only ({@code /api}
 * takes {@code /api} and {@code /api/x}, not {@code /apix}), compared with the path as the client
 * sent it (not decoded). The app's workers see the path without the prefix, and the prefix in
 * {@code X-Forwarded-Prefix}; a path no route takes is answered 404 here, without a worker.
 * The route {@code /} takes every path and passes it on as it is: a single app is that one route.
 */
public final class Routes implements Handler {
    /** Where a worker learns the prefix it is served under (plumber: {@code req$HTTP_X_FORWARDED_PREFIX}). */
    static final HeaderName PREFIX_HEADER = HeaderNames.create("X-Forwarded-Prefix");

    private record Route(String prefix, ProxyHandler handler) {
    }

    /** Longest prefix first, so the first match is the one to take. */
    private final List<Route> routes = new ArrayList<>();
    private final ErrorAnswers answers;
    private final Observer observer;

    /** @param handlers each app's handler by its route's prefix ({@code /api}, or {@code /}) */
    public Routes(Map<String, ProxyHandler> handlers, ErrorAnswers answers, Observer observer) {
        handlers.forEach((prefix, handler) -> routes.add(new Route(prefix, handler)));
        routes.sort(Comparator.comparingInt((Route route) -> route.prefix().length()).reversed());
        this.answers = answers;
        this.observer = observer;
    }

    @Override
    public void handle(ServerRequest req, ServerResponse res) {
        String path = ProxyHandler.originForm(req.prologue().uriPath().rawPath());
        for (Route route : routes) {
            if (matches(route.prefix(), path)) {
                if (route.handler().servesSessions() && hasPrefix(route.prefix()) && path.equals(route.prefix())) {
                    // A Shiny page asks for its files and its WebSocket by relative paths, which
                    // resolve under the prefix only from "/dash/", as Shiny Server redirects too.
                    String query = req.prologue().hasQuery() ? "?" + req.prologue().query().rawValue() : "";
                    // Relative, so it holds behind a proxy that strips a prefix of its own; and
                    // 302, which no browser keeps once the routes change.
                    String segment = path.substring(path.lastIndexOf('/') + 1);
                    ProxyHandler.serve(req, res, observer, route.prefix(), exchange -> {
                        res.status(Status.FOUND_302);
                        res.header(HeaderNames.LOCATION, segment + "/" + query);
                        res.send();
                    });
                    return;
                }
                route.handler().handle(req, res);
                return;
            }
        }
        ProxyHandler.serve(req, res, observer, null, exchange -> {
            exchange.failed("no_route");
            exchange.sentBody(answers.send(req, res, Status.NOT_FOUND_404, "no app is served under " + path
                    + " (routes: " + String.join(", ", routes.stream().map(Route::prefix).sorted().toList()) + ")"));
        });
    }

    static boolean matches(String prefix, String path) {
        return !hasPrefix(prefix) || path.startsWith(prefix)
                && (path.length() == prefix.length() || path.charAt(prefix.length()) == '/');
    }

    /** Whether a route's workers see paths without it: every route but {@code /}. */
    static boolean hasPrefix(String prefix) {
        return !"/".equals(prefix);
    }

    /** The target the app's workers get: without the prefix, and never empty ({@code /api?q} is {@code /?q}). */
    static String strip(String prefix, String target) {
        if (!hasPrefix(prefix) || !target.startsWith(prefix)) {
            return target;
        }
        String rest = target.substring(prefix.length());
        return rest.startsWith("/") ? rest : "/" + rest;
    }

    /** The route's prefix after any a proxy in front already stripped and said in the same header. */
    static String forwardedPrefix(String before, String prefix) {
        if (before == null || before.isBlank()) {
            return prefix;
        }
        String outer = before.trim();
        return (outer.endsWith("/") ? outer.substring(0, outer.length() - 1) : outer) + prefix;
    }
}
