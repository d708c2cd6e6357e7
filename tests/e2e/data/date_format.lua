-- upstream example 20-date/date_format: now in UTC, a fixed instant in words, an explicit
-- input pattern, and a conversion to a fixed offset.
local flow = Flow.new("date_format")

flow:step("now", nodes.date_format({
    input = "now",
    output_format = "%Y-%m-%d %H:%M:%S UTC",
    output_key = "current_time",
}))

flow:step("pretty", nodes.date_format({
    input = "2024-06-15T10:30:00Z",
    output_format = "%B %d, %Y at %I:%M %p",
    output_key = "pretty_date",
}))

flow:step("european", nodes.date_format({
    input = "15/06/2024 10:30:00",
    input_format = "%d/%m/%Y %H:%M:%S",
    output_format = "%Y-%m-%d",
    output_key = "iso_date",
}))

flow:step("shifted", nodes.date_format({
    input = "2024-06-15T10:30:00Z",
    timezone = "+02:00",
    output_format = "%Y-%m-%dT%H:%M:%S%:z",
    output_key = "berlin_summer",
}))

flow:step("kept_offset", nodes.date_format({
    input = "2024-06-15 23:05:09",
    output_format = "%a %e %b %y, %j, %H:%M:%S %z",
    output_key = "plain",
}))

return flow
