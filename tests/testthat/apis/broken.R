# A plumber file with a syntax error: valve_start() must fail fast and show it.
#* @get /broken
function( {
