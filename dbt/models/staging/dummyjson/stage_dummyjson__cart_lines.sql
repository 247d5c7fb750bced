{{ config(unique_key='cart_id') }}

with

source as (

    -- the newest version of each cart (of each cart new files touched, on an incremental build): its lines replace
    -- the cart's old lines whole, none for an emptied cart
    select * from {{ landing_rows('dummyjson', 'carts') }}

),

unnested as (

    select
        id as cart_id,
        userId as user_id,
        filename as source_file,
        unnest(products) as line,
        generate_subscripts(products, 1) as line_number
    from source

),

renamed as (

    select
        cast(cart_id as integer) as cart_id,
        cast(user_id as integer) as user_id,
        cast(line_number as integer) as line_number,
        cast(line.id as integer) as product_id,
        cast(line.quantity as integer) as quantity,
        cast(line.price as decimal(12, 2)) as unit_price,
        cast(line.total as decimal(12, 2)) as line_total,
        cast(line.discountedTotal as decimal(12, 2)) as discounted_total,
        source_file
    from unnested

),

final as (

    select cart_id || '-' || line_number as cart_line_id, * from renamed

)

select * from final
