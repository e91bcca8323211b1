# A small Shiny app for valve's tests: the output shows the input doubled and the pid of the
# worker that rendered it, so a test can tell which worker serves each browser session.
library(shiny)

ui <- fluidPage(
  numericInput("n", "n", value = 5),
  textOutput("result")
)

server <- function(input, output, session) {
  output$result <- renderText(paste0("double=", input$n * 2, " pid=", Sys.getpid()))
}

shinyApp(ui, server)
