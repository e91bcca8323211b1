function(input, output) {
  output$result <- renderText(paste0("double=", input$n * 2, " pid=", Sys.getpid()))
}
