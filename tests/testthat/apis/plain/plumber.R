#* @get /who
function() list(style = "plain")
