-- Line items from products through a foreach transform function.
local flow = Flow.new("foreach_function")

flow:step("products", function(ctx)
    if ctx.products ~= nil then
        return { products = ctx.products }
    end
    return {
        products = {
            { name = "Widget", price = 10.5, qty = 3 },
            { name = "Gadget", price = 25.0, qty = 1 },
            { name = "Doohickey", price = 5.75, qty = 10 }
        }
    }
end)

flow:step("lines", nodes.foreach({
    source_key = "products",
    output_key = "line_items",
    transform = function(product, i)
        return {
            line = i,
            name = string.upper(product.name),
            total = product.price * product.qty
        }
    end
})):depends_on("products")

flow:step("summary", nodes.log({
    message = "Built ${ctx.line_items_count} line items"
})):depends_on("lines")

return flow
