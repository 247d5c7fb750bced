{{ config(unique_key='product_id') }}

with

source as (

    -- the newest version of each product (of each product new files touched, on an incremental build)
    select * from {{ landing_rows('dummyjson', 'products') }}

),

renamed as (

    select
        cast(id as integer) as product_id,
        title as product_name,
        category,
        brand,
        cast(price as decimal(12, 2)) as price,
        cast(stock as integer) as stock,
        filename as source_file
    from source

),

final as (

    select * from renamed

)

select * from final
