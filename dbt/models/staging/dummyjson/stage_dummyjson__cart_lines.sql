with

source as (

    select * from {{ source('dummyjson', 'carts') }}

),

latest as (

    -- every export is a full snapshot: keep each cart from the newest file
    select * from source
    qualify row_number() over (partition by id order by filename desc) = 1

),

unnested as (

    select
        id as cart_id,
        userId as user_id,
        filename as source_file,
        unnest(products) as line,
        generate_subscripts(products, 1) as line_number
    from latest

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

    select
        cart_id || '-' || line_number as cart_line_id,
        *
    from renamed

)

select * from final
