{{ config(materialized='incremental', unique_key='cart_id', on_schema_change='fail') }}

with

source as (

    -- the rows of files loaded since this model's last build (every row on a full build)
    select * from {{ landing_new_rows(source('dummyjson', 'carts')) }}

),

latest as (

    -- every export is a full snapshot: keep each cart from the newest file
    select * from source
    qualify row_number() over (partition by id order by filename desc) = 1

),

changed as (

    -- a file that landed late loses to the newer file this table already holds; a cart that changed is replaced
    -- whole (unique_key cart_id: its old lines go, even those the new version no longer has)
    select latest.* from latest
    {% if is_incremental() %}
    left join (select cart_id, max(source_file) as source_file from {{ this }} group by cart_id) as built
        on built.cart_id = latest.id
    where built.cart_id is null or latest.filename > built.source_file
    {% endif %}

),

unnested as (

    select
        id as cart_id,
        userId as user_id,
        filename as source_file,
        unnest(products) as line,
        generate_subscripts(products, 1) as line_number
    from changed

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
        *,
        (select max(_landing_batch) from source) as _landing_high
    from renamed

)

select * from final
