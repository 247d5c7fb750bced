with

cart_lines as (

    select * from {{ ref('stage_dummyjson__cart_lines') }}

),

products as (

    select * from {{ ref('stage_dummyjson__products') }}

),

users as (

    select * from {{ ref('stage_dummyjson__users') }}

),

final as (

    select
        cart_lines.cart_line_id,
        cart_lines.cart_id,
        cart_lines.product_id,
        products.product_name,
        products.category,
        cart_lines.user_id,
        users.first_name || ' ' || users.last_name as user_name,
        users.email as user_email,
        cart_lines.quantity,
        cart_lines.unit_price,
        cart_lines.line_total,
        cart_lines.discounted_total
    from cart_lines
    inner join products on cart_lines.product_id = products.product_id
    inner join users on cart_lines.user_id = users.user_id

)

select * from final
