# Written as in an interactive session after library(plumber): plumber's exports unqualified,
# at plumb time (%>% in the @plumber block) and in an endpoint (as_attachment()).

#* @plumber
function(pr) {
  pr %>% pr_get("/piped", function() list(piped = TRUE))
}

#* @get /download
#* @serializer text
function() {
  as_attachment("hello", "hello.txt")
}
